"""Logging set-up: one structured line per record on stderr, logfmt or JSON.

The exporter logs through the standard library (`logging.getLogger(__name__)`), and
`setup_logging` gives the root logger one handler in the style of the Prometheus
exporters, so the lines sit well next to theirs in Loki or `kubectl logs`:

    ts=2026-01-02T03:04:05.678Z level=warn logger=exporter.collect.poller msg="poll failed"

or, with `--log.format=json`, one object per line with the same keys.

Structured fields ride in `extra` under the single key `fields`:

    log.warning("poll failed", extra={"fields": {"vpn_gateway_id": gateway, "code": code}})

One nested mapping rather than loose `extra` keys because the latter collide with the
LogRecord's own attributes (`name`, `msg`, … raise) and cannot be told apart from them.
Field values should be scalars (str, int, float, bool, None); anything else is written as
its `str()`, so no value can break a line. A field named like a fixed key (`ts`, `level`,
`logger`, `msg`, `exc`, `stack`) is written as `field_<name>` so it cannot shadow it.
Secrets never go into fields or messages: the formatters do not redact.

Levels are written as Prometheus exporters write them: `debug`, `info`, `warn`, `error`.
The level applies to the exporter's own loggers (`exporter.*`, Python warnings); third-party
libraries (uvicorn, APScheduler, httpx, tzlocal...), which log every request or job run,
are held to `warn` as well unless asked (`--log.library-level`). Python warnings are
routed through logging too, so stderr stays parseable. Uvicorn should be started with
`log_config=None` so that its loggers propagate here instead of installing their own
handlers.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Mapping
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "LogfmtFormatter", "setup_logging"]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
"""Accepted `--log.level` values (`warn` as an alias, as Prometheus spells it)."""

OWN_LOGGERS = ("exporter", "py.warnings")
"""Loggers `level` applies to; every other logger is a library's (`library_level`)."""

_FIXED_KEYS = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
_NEEDS_QUOTES = re.compile(r'[\s="\\]')
_INVALID_KEY_CHARS = re.compile(r'[\s="\\]|[^\x21-\x7e]')


class _StructuredFormatter(logging.Formatter):
    """The shared part: fixed keys, fields, exception text; subclasses render a line."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = [
            ("ts", _timestamp(record)),
            ("level", _level_name(record.levelno)),
            ("logger", record.name),
            # Python's warnings end in a newline, which would only be escaped noise.
            ("msg", record.getMessage().rstrip("\n")),
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                name = str(key)
                pairs.append((f"field_{name}" if name in _FIXED_KEYS else name, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            pairs.append(("exc", record.exc_text))
        if record.stack_info:
            pairs.append(("stack", self.formatStack(record.stack_info)))
        return self.render(pairs)

    def render(self, pairs: list[tuple[str, object]]) -> str:
        raise NotImplementedError


class LogfmtFormatter(_StructuredFormatter):
    """`key=value` pairs; values quoted and escaped (JSON string rules) when they need it."""

    def render(self, pairs: list[tuple[str, object]]) -> str:
        return " ".join(f"{_logfmt_key(key)}={_logfmt_value(value)}" for key, value in pairs)


class JsonFormatter(_StructuredFormatter):
    """One JSON object per line; non-finite floats and non-scalars become strings."""

    def render(self, pairs: list[tuple[str, object]]) -> str:
        return json.dumps(
            {key: _json_value(value) for key, value in pairs},
            ensure_ascii=False,
            separators=(",", ":"),
        )


class _ExporterHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `setup_logging` installed, so a second call replaces only it."""


class _LibraryFilter(logging.Filter):
    """Drops third-party records below the library level."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        name = record.name
        return any(name == own or name.startswith(f"{own}.") for own in OWN_LOGGERS)


def setup_logging(
    level: str,
    fmt: Literal["logfmt", "json"],
    *,
    stream: TextIO | None = None,
    library_level: str = "warn",
) -> None:
    """Send all logging to `stream` (stderr) formatted as `fmt`, at `level`; third-party
    libraries' records also need `library_level` (so `--log.level=debug` shows the
    exporter's debug lines, not every HTTP request and job run of the libraries).

    Calling it again replaces the handler it installed earlier and leaves any other handler
    on the root logger (a test's capture, say) alone. Raises ValueError for an unknown
    level or format, so a typo on the command line fails loudly.
    """
    numeric_level = _numeric_level(level)
    numeric_library_level = _numeric_level(library_level)
    formatter: logging.Formatter
    if fmt == "logfmt":
        formatter = LogfmtFormatter()
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}: use logfmt or json")

    handler = _ExporterHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    handler.addFilter(_LibraryFilter(numeric_library_level))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ExporterHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    logging.captureWarnings(True)


def _numeric_level(level: str) -> int:
    numeric = LEVELS.get(level.strip().lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warn or error")
    return numeric


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC with milliseconds, as Prometheus writes `ts`."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _level_name(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _logfmt_key(key: str) -> str:
    return _INVALID_KEY_CHARS.sub("_", key) or "_"


def _logfmt_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else _text(value)
    if text and text.isprintable() and not _NEEDS_QUOTES.search(text):
        return text
    return _quote(text)


def _quote(text: str) -> str:
    """A JSON string literal, which logfmt readers decode; every line break is escaped.

    JSON escapes the C0 controls but leaves other characters that some readers treat as
    line breaks or that terminals hide (U+0085, U+2028, DEL, …); those become `\\uXXXX`.
    """
    quoted = json.dumps(text, ensure_ascii=False)
    if quoted.isprintable():
        return quoted
    return "".join(c if c.isprintable() else _escape_char(c) for c in quoted)


def _escape_char(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def _json_value(value: object) -> object:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        # Beyond 64 bits JSON readers lose digits (and Python may refuse to print it).
        return value if -(2**63) <= value < 2**64 else _text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return _text(value)


def _text(value: object) -> str:
    """`str(value)`, guarded: a broken `__str__` must not lose the whole log line."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
