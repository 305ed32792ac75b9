"""Logging set-up: logfmt and JSON lines, fields, levels, escaping."""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.logs import JsonFormatter, LogfmtFormatter, setup_logging

LOGGER = "exporter.test"
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave the process-wide logging state as each test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def capture(fmt: str = "logfmt", level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    setup_logging(level, fmt, stream=stream)  # type: ignore[arg-type]
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def logfmt_value(line: str, key: str) -> str:
    """The raw text of the last field, which the tests put after `msg=m`."""
    prefix = f" msg=m {key}="
    return line[line.index(prefix) + len(prefix) :]


# --- logfmt ------------------------------------------------------------------------------


def test_logfmt_line_has_ts_level_logger_and_msg_first() -> None:
    stream = capture()
    logging.getLogger(LOGGER).info("poll failed")
    (line,) = lines(stream)
    assert re.fullmatch(rf'ts={TS} level=info logger=exporter\.test msg="poll failed"', line)


def test_logfmt_writes_fields_as_key_value_pairs() -> None:
    stream = capture()
    fields = {"vpn_gateway_id": "vpn-1", "attempt": 3, "ok": True, "retry_after": None, "s": 1.5}
    logging.getLogger(LOGGER).warning("m", extra={"fields": fields})
    (line,) = lines(stream)
    assert line.endswith(" msg=m vpn_gateway_id=vpn-1 attempt=3 ok=true retry_after=null s=1.5")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("x y", '"x y"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("k=v", '"k=v"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("tab\there", '"tab\\there"'),
        ("", '""'),
        ("网关", "网关"),
        ("nbsp\xa0here", '"nbsp\\u00a0here"'),
        ("sep\u2028here", '"sep\\u2028here"'),
    ],
)
def test_logfmt_quotes_and_escapes_values_that_need_it(value: str, written: str) -> None:
    stream = capture()
    logging.getLogger(LOGGER).info("m", extra={"fields": {"v": value}})
    assert logfmt_value(lines(stream)[0], "v") == written


@settings(deadline=None)
@given(value=st.text())
def test_logfmt_values_are_one_line_and_read_back_unchanged(value: str) -> None:
    stream = io.StringIO()
    setup_logging("info", "logfmt", stream=stream)
    logging.getLogger(LOGGER).info("m", extra={"fields": {"v": value}})
    text = stream.getvalue()
    assert text.endswith("\n") and len(text[:-1].splitlines()) == 1
    written = logfmt_value(text[:-1], "v")
    assert (json.loads(written) if written.startswith('"') else written) == value


def test_logfmt_keeps_an_exception_on_one_line() -> None:
    stream = capture()
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger(LOGGER).exception("failed")
    (line,) = lines(stream)
    exc = json.loads(line[line.index(" exc=") + len(" exc=") :])
    assert exc.startswith("Traceback (most recent call last):")
    assert exc.endswith("RuntimeError: boom\nsecond line")


def test_logfmt_replaces_characters_that_cannot_be_in_a_key() -> None:
    stream = capture()
    logging.getLogger(LOGGER).info("m", extra={"fields": {'a b="c"': 1, "": 2}})
    assert lines(stream)[0].endswith(" msg=m a_b__c_=1 _=2")


def test_field_named_like_a_fixed_key_does_not_shadow_it() -> None:
    stream = capture()
    logging.getLogger(LOGGER).info("real", extra={"fields": {"msg": "fake", "level": "x"}})
    (line,) = lines(stream)
    assert " level=info " in line and " msg=real " in line
    assert line.endswith(" field_msg=fake field_level=x")


def test_unprintable_field_value_does_not_lose_the_line() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    stream = capture()
    logging.getLogger(LOGGER).info("m", extra={"fields": {"v": Broken()}})
    assert logfmt_value(lines(stream)[0], "v") == '"<unprintable Broken>"'


def test_message_arguments_are_interpolated() -> None:
    stream = capture()
    logging.getLogger(LOGGER).info("polled %d gateways", 12)
    assert lines(stream)[0].endswith(' msg="polled 12 gateways"')


def test_timestamp_is_utc_with_milliseconds() -> None:
    record = logging.makeLogRecord({"name": LOGGER, "msg": "m", "levelno": logging.INFO})
    record.created, record.msecs = 1_700_000_000.25, 250.0
    assert LogfmtFormatter().format(record).startswith("ts=2023-11-14T22:13:20.250Z ")


# --- JSON --------------------------------------------------------------------------------


def test_json_writes_one_object_per_line_with_the_fixed_keys_and_fields() -> None:
    stream = capture("json")
    log = logging.getLogger(LOGGER)
    log.info("first\nline", extra={"fields": {"item": "VpnRouteQuota", "count": 2}})
    log.error("second")
    first, second = (json.loads(line) for line in lines(stream))
    assert re.fullmatch(TS, first.pop("ts"))
    assert first == {
        "level": "info",
        "logger": LOGGER,
        "msg": "first\nline",
        "item": "VpnRouteQuota",
        "count": 2,
    }
    assert (second["level"], second["msg"]) == ("error", "second")


def test_json_writes_non_finite_floats_and_non_scalars_as_strings() -> None:
    stream = capture("json")
    fields = {"nan": float("nan"), "inf": float("-inf"), "list": [1, "a"], "huge": 10**30}
    logging.getLogger(LOGGER).info("m", extra={"fields": fields})
    (line,) = lines(stream)
    record = json.loads(line, parse_constant=pytest.fail)
    assert (record["nan"], record["inf"], record["list"]) == ("nan", "-inf", "[1, 'a']")
    assert record["huge"] == str(10**30)


def test_json_includes_the_exception_traceback() -> None:
    stream = capture("json")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger(LOGGER).exception("failed")
    (line,) = lines(stream)
    assert json.loads(line)["exc"].endswith("ValueError: bad")


def test_json_formatter_writes_the_stack_when_asked() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord(
        {"name": LOGGER, "msg": "m", "levelno": 20, "stack_info": "Stack (most…"}
    )
    assert json.loads(formatter.format(record))["stack"] == "Stack (most…"


# --- levels and set-up -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "written"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warn"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
    ],
)
def test_levels_are_written_as_prometheus_exporters_write_them(level: int, written: str) -> None:
    stream = capture(level="debug")
    logging.getLogger(LOGGER).log(level, "m")
    assert f" level={written} " in lines(stream)[0]


def test_records_below_the_level_are_dropped() -> None:
    stream = capture(level="warning")
    log = logging.getLogger(LOGGER)
    log.info("hidden")
    log.warning("shown")
    assert [line.rsplit("msg=", 1)[1] for line in lines(stream)] == ["shown"]


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("DEBUG", logging.DEBUG),
        (" Info ", logging.INFO),
        ("warn", logging.WARNING),
        ("Warning", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
def test_level_names_are_case_insensitive_and_warn_is_an_alias(name: str, level: int) -> None:
    setup_logging(name, "logfmt", stream=io.StringIO())
    assert logging.getLogger().level == level


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        setup_logging("verbose", "logfmt")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        setup_logging("info", "xml")  # type: ignore[arg-type]


def test_setting_up_again_replaces_only_its_own_handler() -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "logfmt", stream=first)
    setup_logging("info", "json", stream=second)
    logging.getLogger(LOGGER).info("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["msg"] == "once"
    assert other in logging.getLogger().handlers


# (Not uvicorn's loggers: a test elsewhere that runs uvicorn with its default log config
# stops them from propagating, in this process only.)
@pytest.mark.parametrize("library", ["httpx", "apscheduler.scheduler", "tzlocal", "aiohttp.client"])
def test_library_lines_are_quiet_even_at_debug_unless_asked(library: str) -> None:
    for level in ("info", "debug"):
        stream = capture(level=level)
        logging.getLogger(library).info("HTTP Request: POST https://vpc.aliyuncs.com")
        logging.getLogger(library).debug("Looking for jobs to run")
        logging.getLogger(LOGGER).debug("the exporter's own debug line")
        assert f"logger={library}" not in stream.getvalue()
        assert ("own debug line" in stream.getvalue()) == (level == "debug")
    stream = io.StringIO()
    setup_logging("debug", "logfmt", stream=stream, library_level="debug")
    logging.getLogger(library).debug("Looking for jobs to run")
    assert f"logger={library}" in stream.getvalue()


def test_library_warnings_are_shown() -> None:
    stream = capture(level="info")
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    assert " level=warn logger=apscheduler.scheduler " in stream.getvalue()


def test_python_warnings_are_logged_as_records() -> None:
    stream = capture()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        setup_logging("info", "logfmt", stream=stream)
        warnings.warn("careful with that", UserWarning, stacklevel=1)
    (line,) = lines(stream)
    assert " level=warn logger=py.warnings " in line
    assert "UserWarning: careful with that" in line
    assert not line.endswith('\\n"')
