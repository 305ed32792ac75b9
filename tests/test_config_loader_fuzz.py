"""Property tests of the config loader: whatever the file holds, `load_config` returns a
`Config` or raises `ConfigError`, never anything else, and quickly.

`test_config_loader.py` covers each rule with an example and `parse_duration` with hypothesis;
these add arbitrary documents: any text, any YAML values, valid configs with one key
replaced by anything, YAML tags and anchors, environment overrides of any key.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError

VALID: dict[str, Any] = {
    "credentials": {
        "default": {"source": "access_key", "access_key_id": "id", "access_key_secret": "s"},
        "prod": {"source": "ram_role_arn", "role_arn": "acs:ram::123:role/x"},
    },
    "poll": {"interval": "5m", "stale_after": None, "jitter": 0.05},
    "api": {
        "timeout": "10s",
        "max_retries": 4,
        "endpoint": "vpc.{region_id}.aliyuncs.com",
        "rate_limits": {"GetVpnGatewayDiagnoseResult": "96/min"},
        "budget_fraction": 0.8,
        "max_response_bytes": "8MiB",
    },
    "targets": [
        {"region_id": "cn-hangzhou", "gateways": ["vpn-aaa", "vpn-bbb"], "interval": "1m"},
        {
            "region_id": "ap-southeast-1",
            "credentials": "prod",
            "discover": {"tags": {"env": "prod"}, "interval": "1h"},
        },
    ],
    "diagnose": {"enabled": False, "interval": "1h"},
    "gateway_info": {"tags": ["env"]},
    "admin": {
        "enabled": False,
        "allowed_connections": ["vco-abc"],
        "allowed_destinations": ["10.0.0.0/8"],
    },
}

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["5m", "1h30m", "-1s", "0", "96/min", "10.0.0.0/8", "vpn-x", "{region_id}"])
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def loads(text: str, environ: dict[str, str] | None = None) -> Config | None:
    """`load_config` on `text`; None when it raised ConfigError. Anything else fails."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            return load_config(path, environ or {})
        except ConfigError as error:
            assert error.errors, "a ConfigError names at least one problem"
            return None


def dump(document: Any) -> str:
    return yaml.safe_dump(document, allow_unicode=True)


def test_the_fuzzers_starting_point_is_valid() -> None:
    assert loads(dump(VALID)) is not None


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    loads(text)


@FUZZ
@given(VALUES)
def test_any_yaml_value_is_a_config_or_a_config_error(document: Any) -> None:
    loads(dump(document))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


PATHS = _paths(VALID)


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(document, dict):
        return {**document, head: _replaced(document[head], tuple(rest), value)}
    copy = list(document)
    copy[head] = _replaced(copy[head], tuple(rest), value)
    return copy


@FUZZ
@given(st.sampled_from(PATHS), VALUES)
def test_a_valid_config_with_any_key_replaced_is_a_config_or_a_config_error(
    path: tuple[Any, ...], value: Any
) -> None:
    loads(dump(_replaced(VALID, path, value)))


@FUZZ
@given(
    st.sampled_from(["!env", "!file", "!!binary", "!!python/object:os.system", "!!set", "!!omap"]),
    st.text(max_size=30),
    st.sampled_from(PATHS),
)
def test_tags_anywhere_are_a_config_or_a_config_error(
    tag: str, argument: str, path: tuple[Any, ...]
) -> None:
    marker = "TAGGED-VALUE-MARKER"
    text = dump(_replaced(VALID, path, marker))
    loads(text.replace(marker, f"{tag} {yaml.safe_dump(argument).splitlines()[0]}", 1))


@FUZZ
@given(
    st.lists(st.sampled_from(PATHS), min_size=1, max_size=3),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
)
def test_environment_overrides_of_any_key_are_a_config_or_a_config_error(
    paths: list[tuple[Any, ...]], override: str
) -> None:
    environ = {
        "ALIYUN_VPN_EXPORTER_" + "__".join(str(step).upper() for step in path): override
        for path in paths
    }
    loads(dump(VALID), environ)


@pytest.mark.parametrize("depth", [6, 9])
def test_alias_bombs_are_refused_without_being_expanded(depth: int) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, depth):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    lines.append(f"targets: *a{depth - 1}")
    with pytest.raises(ConfigError) as refused:
        load_config_text("\n".join(lines))
    assert "aliases" in str(refused.value)


@pytest.mark.parametrize("path", ["~nosuchuser-fuzz/secret", "a\x00b", "/", "."])
def test_unreadable_file_references_are_a_config_error(path: str) -> None:
    text = dump(VALID).replace("access_key_secret: s", "access_key_secret: FILE-REF")
    with pytest.raises(ConfigError) as refused:
        load_config_text(text.replace("FILE-REF", f"!file {json.dumps(path)}"))
    assert [where for where, _ in refused.value.errors] == ["credentials.default.access_key_secret"]


@pytest.mark.parametrize("depth", [50, 5000])
def test_deeply_nested_documents_are_a_config_error(depth: int) -> None:
    with pytest.raises(ConfigError):
        load_config_text("targets: " + "[" * depth + "]" * depth)


def test_a_config_using_aliases_modestly_still_loads() -> None:
    text = """
defaults: &defaults {interval: 1m}
targets:
  - {region_id: cn-hangzhou, gateways: [vpn-a], <<: *defaults}
  - {region_id: cn-beijing, gateways: [vpn-b], <<: *defaults}
"""
    with pytest.raises(ConfigError) as refused:  # `defaults` itself is not a known key...
        load_config_text(text)
    assert [path for path, _ in refused.value.errors] == ["defaults"]
    config = load_config_text(text.replace("defaults: &defaults", "poll: &defaults"))
    assert [t.interval for t in config.targets] == [60.0, 60.0]


def load_config_text(text: str) -> Config:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.yml"
        path.write_text(text)
        return load_config(path, {})
