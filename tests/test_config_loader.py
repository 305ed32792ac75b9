"""Configuration: strict YAML with full error paths, durations and rates, environment
overrides, `!env`/`!file` secrets, cross-references, and `--check-config` output that never
shows a secret."""

from __future__ import annotations

import base64
import ipaddress
import json
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from exporter.config.loader import check_config, load_config
from exporter.config.model import AccessKeyProfile, Config, DefaultProfile, RamRoleArnProfile
from exporter.config.values import ConfigError, Rate, format_duration, parse_duration

MINIMAL = """
targets:
  - region_id: cn-hangzhou
    gateways: [vpn-aaa]
"""

SECRET = 'S3cr3t/+=&"\\ key%x'
"""Recognisable, and different in every encoding checked below."""


def encodings(secret: str) -> list[str]:
    return [
        secret,
        base64.b64encode(secret.encode()).decode(),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
    ]


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


def errors_of(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return dict(caught.value.errors)


# --- structure and defaults -------------------------------------------------------------


def test_minimal_config_gets_documented_defaults(write) -> None:
    config = load_config(write(MINIMAL), {})

    assert config.credentials == {"default": DefaultProfile()}
    assert config.poll.interval == 300.0
    assert config.poll.stale_after is None
    assert config.api.timeout == 10.0
    assert config.api.max_retries == 4
    assert config.api.budget_fraction == 0.8
    assert config.api.rate_limits == {}
    assert config.diagnose.enabled is False
    assert config.admin.enabled is False
    (target,) = config.targets
    assert target.name == "default/cn-hangzhou"
    assert target.credentials == "default"
    assert config.interval_for(target) == 300.0


def test_design_sketch_config_is_read_as_written(write) -> None:
    config = load_config(
        write(
            """
            credentials:
              default: {source: default}
              prod:
                {source: ram_role_arn, role_arn: "acs:ram::123:role/vpn-exporter", external_id: x}
            poll: {interval: 5m, stale_after: null}
            api:
              timeout: 10s
              max_retries: 4
              endpoint: null
              proxy: null
              ca_file: null
              rate_limits: {GetVpnGatewayDiagnoseResult: 96/min}
            targets:
              - region_id: cn-hangzhou
                gateways: [vpn-aaa, vpn-bbb]
                interval: 1m
              - region_id: ap-southeast-1
                credentials: prod
                discover: {tags: {env: prod}, interval: 1h}
            diagnose: {enabled: false, interval: 1h}
            admin: {enabled: false, allowed_connections: [], allowed_destinations: [10.0.0.0/8]}
            """
        ),
        {},
    )

    prod = config.credentials["prod"]
    assert isinstance(prod, RamRoleArnProfile)
    assert prod.role_arn == "acs:ram::123:role/vpn-exporter"
    assert config.api.rate_limits == {"GetVpnGatewayDiagnoseResult": Rate(96, 60.0)}
    first, second = config.targets
    assert (first.name, first.gateways, config.interval_for(first)) == (
        "default/cn-hangzhou",
        ("vpn-aaa", "vpn-bbb"),
        60.0,
    )
    assert second.name == "prod/ap-southeast-1"
    assert second.discover is not None
    assert second.discover.tags == {"env": "prod"}
    assert second.discover.interval == 3600.0
    assert config.interval_for(second) == 300.0
    assert config.admin.allowed_destinations == (ipaddress.IPv4Network("10.0.0.0/8"),)
    assert config.regions == {"cn-hangzhou", "ap-southeast-1"}


def test_misspelt_key_in_second_target_is_reported_with_its_full_path(write) -> None:
    path = write(
        """
        targets:
          - region_id: cn-hangzhou
            gateways: [vpn-aaa]
          - region_id: cn-shanghai
            gatways: [vpn-bbb]
        """
    )

    assert errors_of(path)["targets[1].gatways"] == "unknown key (did you mean 'gateways'?)"


def test_unknown_key_inside_a_profile_names_the_profile_not_its_source(write) -> None:
    path = write(
        """
        credentials:
          prod: {source: access_key, access_key_id: a, acces_key_secret: b}
        targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
        """
    )

    errors = errors_of(path)

    assert errors["credentials.prod.acces_key_secret"].startswith("unknown key")
    assert errors["credentials.prod.access_key_secret"] == "missing required key"


def test_every_failed_field_is_reported_at_once_one_per_line(write) -> None:
    path = write(
        """
        pol: {interval: 5m}
        api: {timeout: soon, max_retries: -1}
        targets:
          - region_id: Hangzhou
            gateways: [vpn-aaa, gw-1]
        admin: {allowed_destinations: [10.0.0.1/24]}
        """
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, {})

    errors = dict(caught.value.errors)
    assert set(errors) == {
        "pol",
        "api.timeout",
        "api.max_retries",
        "targets[0].region_id",
        "targets[0].gateways[1]",
        "admin.allowed_destinations[0]",
    }
    assert errors["admin.allowed_destinations[0]"] == "not a network address: host bits are set"
    assert str(caught.value).splitlines() == [f"{p}: {m}" for p, m in caught.value.errors]


def test_missing_required_key_is_named(write) -> None:
    assert errors_of(write("targets: [{gateways: [vpn-a]}]"))["targets[0].region_id"] == (
        "missing required key"
    )


def test_unknown_profile_source_lists_the_known_ones(write) -> None:
    path = write(
        """
        credentials: {prod: {source: magic}}
        targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
        """
    )

    message = errors_of(path)["credentials.prod.source"]

    assert message == (
        "must be one of 'default', 'access_key', 'ram_role_arn', 'oidc', 'ecs_ram_role', "
        "'credentials_uri'"
    )


def test_profile_without_source_says_it_is_missing(write) -> None:
    path = write(
        """
        credentials: {prod: {role_arn: "acs:ram::1:role/x"}}
        targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
        """
    )

    assert errors_of(path)["credentials.prod.source"].startswith("missing required key (one of")


def test_wrong_shapes_say_what_was_expected(write) -> None:
    errors = errors_of(write("poll: 5m\ntargets: {region_id: cn-hangzhou}\n"))

    assert errors == {"poll": "expected a mapping", "targets": "expected a list"}


def test_models_are_frozen(write) -> None:
    config = load_config(write(MINIMAL), {})

    with pytest.raises(ValueError, match="frozen"):
        config.poll.interval = 1.0  # type: ignore[misc]


def test_config_built_in_code_gets_the_same_names_and_checks() -> None:
    config = Config(targets=[{"region_id": "cn-hangzhou", "gateways": ["vpn-a"]}])  # type: ignore[list-item]

    assert config.targets[0].name == "default/cn-hangzhou"


# --- durations and rates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1m30s500ms", 90.5),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        (" 2m ", 120.0),
        ("45", 45.0),
        ("2.5", 2.5),
        (45, 45.0),
        (0.25, 0.25),
    ],
)
def test_duration_is_read_as_seconds(write, text: object, seconds: float) -> None:
    value = json.dumps(text) if isinstance(text, str) else text
    config = load_config(write(f"poll: {{interval: {value}}}\n{MINIMAL}"), {})

    assert config.poll.interval == seconds


@pytest.mark.parametrize(
    "text", ["5x", "30m1h", "1h1h", "1h 30m", "m", "", "nan", "inf", "true", "-5s", "0"]
)
def test_invalid_duration_is_an_error_at_its_path(write, text: str) -> None:
    errors = errors_of(write(f"poll: {{interval: {json.dumps(text)}}}\n{MINIMAL}"))

    assert set(errors) == {"poll.interval"}


def test_boolean_is_not_a_duration(write) -> None:
    assert "poll.interval" in errors_of(write(f"poll: {{interval: yes}}\n{MINIMAL}"))


@given(st.integers(min_value=0, max_value=10**12))
def test_whole_milliseconds_round_trip_through_their_text(millis: int) -> None:
    text = format_duration(millis / 1000)

    assert parse_duration(text) == pytest.approx(millis / 1000)


@given(st.text())
def test_any_text_is_a_duration_or_a_clear_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except PydanticCustomError:
        return
    assert isinstance(seconds, float)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("96/min", Rate(96, 60.0)),
        ("2/s", Rate(2, 1.0)),
        ("600/60s", Rate(600, 60.0)),
        ("10/h", Rate(10, 3600.0)),
        ("5/1m30s", Rate(5, 90.0)),
        ("3 / m", Rate(3, 60.0)),
    ],
)
def test_rate_is_read_as_calls_per_period(write, text: str, rate: Rate) -> None:
    config = load_config(
        write(f"api: {{rate_limits: {{DescribeVpnGateways: {text!r}}}}}\n{MINIMAL}"), {}
    )

    assert config.api.rate_limits["DescribeVpnGateways"] == rate


@pytest.mark.parametrize("text", ["96", "0/min", "5/0s", "x/min", "5/fortnight", "/min"])
def test_invalid_rate_is_an_error_at_its_path(write, text: str) -> None:
    errors = errors_of(write(f"api: {{rate_limits: {{DescribeVpnGateways: {text!r}}}}}\n{MINIMAL}"))

    assert set(errors) == {"api.rate_limits.DescribeVpnGateways"}


def test_rate_limit_action_must_look_like_an_action(write) -> None:
    errors = errors_of(write(f"api: {{rate_limits: {{describe-gateways: 5/s}}}}\n{MINIMAL}"))

    assert set(errors) == {"api.rate_limits.describe-gateways"}


def test_a_misspelt_rate_limit_action_is_an_error_naming_the_right_one(write) -> None:
    errors = errors_of(
        write(f"api: {{rate_limits: {{GetVpnGatewayDiagnoseResults: 5/s}}}}\n{MINIMAL}")
    )

    assert errors == {
        "api.rate_limits.GetVpnGatewayDiagnoseResults": "unknown action "
        "'GetVpnGatewayDiagnoseResults' (did you mean 'GetVpnGatewayDiagnoseResult'?)"
    }


def test_a_rate_above_the_published_limit_is_a_warning_not_an_error(write) -> None:
    path = write(f"api: {{rate_limits: {{GetVpnGatewayDiagnoseResult: 1000/min}}}}\n{MINIMAL}")

    config = load_config(path, {})
    code, report = check_config(path, {})

    assert config.warnings() == [
        (
            "api.rate_limits.GetVpnGatewayDiagnoseResult",
            "1000/1m is above the published limit of 120/min for the account and region: "
            "expect Throttling answers",
        )
    ]
    assert code == 0
    assert report.splitlines()[-2:] == [
        "  warnings:",
        "    api.rate_limits.GetVpnGatewayDiagnoseResult: 1000/1m is above the published limit "
        "of 120/min for the account and region: expect Throttling answers",
    ]


def test_a_rate_within_the_published_limit_warns_of_nothing(write) -> None:
    path = write(f"api: {{rate_limits: {{GetVpnGatewayDiagnoseResult: 2/s}}}}\n{MINIMAL}")

    assert load_config(path, {}).warnings() == []
    assert "warnings" not in check_config(path, {})[1]


def test_an_unknown_region_is_an_error_saying_how_to_allow_a_new_one(write) -> None:
    errors = errors_of(
        write(
            """
            targets:
              - {region_id: cn-hangzou, gateways: [vpn-a]}
              - {region_id: xx-newland-1, gateways: [vpn-b]}
            """
        )
    )

    assert errors == {
        "targets[0].region_id": "unknown region 'cn-hangzou' (did you mean 'cn-hangzhou'?) "
        "(a region newer than this exporter: add it to api.extra_regions)",
        "targets[1].region_id": "unknown region 'xx-newland-1' "
        "(a region newer than this exporter: add it to api.extra_regions)",
    }


def test_api_extra_regions_allows_a_region_the_exporter_does_not_know(write) -> None:
    config = load_config(
        write(
            """
            api: {extra_regions: [xx-newland-1]}
            targets:
              - {region_id: xx-newland-1, gateways: [vpn-b]}
            """
        ),
        {},
    )

    assert config.regions == {"xx-newland-1"}


def test_every_duplicate_key_is_reported_at_once(write) -> None:
    path = write(
        """
        poll: {interval: 1m}
        poll: {interval: 2m}
        targets:
          - region_id: cn-hangzhou
            gateways: [vpn-a]
            gateways: [vpn-b]
        """
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert [message for _, message in caught.value.errors] == [
        f"{path}:3:1: found the key 'poll' twice (while reading a mapping at line 2)",
        f"{path}:7:5: found the key 'gateways' twice (while reading a mapping at line 5)",
    ]


def test_max_response_bytes_accepts_units(write) -> None:
    config = load_config(write(f"api: {{max_response_bytes: 1MiB}}\n{MINIMAL}"), {})

    assert config.api.max_response_bytes == 1024 * 1024


# --- identifiers, CIDRs, endpoints, files -----------------------------------------------


@pytest.mark.parametrize(
    "region", ["cn-hangzhou", "ap-southeast-1", "cn-shanghai-finance-1", "us-east-1"]
)
def test_real_region_ids_are_accepted(write, region: str) -> None:
    load_config(write(f"targets: [{{region_id: {region}, gateways: [vpn-a1]}}]"), {})


@pytest.mark.parametrize(
    "region", ["hangzhou", "CN-HANGZHOU", "cn_hangzhou", "cn-", "vpc.cn-hangzhou"]
)
def test_malformed_region_ids_are_refused(write, region: str) -> None:
    errors = errors_of(write(f"targets: [{{region_id: {region!r}, gateways: [vpn-a1]}}]"))

    assert set(errors) == {"targets[0].region_id"}


@pytest.mark.parametrize("gateway", ["vpn-", "VPN-abc", "vco-abc", "vpn-ABC", "vpn abc"])
def test_malformed_gateway_ids_are_refused(write, gateway: str) -> None:
    errors = errors_of(
        write(f"targets: [{{region_id: cn-hangzhou, gateways: [vpn-ok, {gateway!r}]}}]")
    )

    assert set(errors) == {"targets[0].gateways[1]"}


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.1/24", "not a network address: host bits are set"),
        ("10.0.0.0/33", "not an IPv4 CIDR (invalid prefix length)"),
        ("ten/8", "not an IPv4 CIDR (like 10.0.0.0/8)"),
        ("fd00::/8", "not an IPv4 CIDR (like 10.0.0.0/8)"),
    ],
)
def test_allowed_destinations_must_be_ipv4_networks(write, cidr: str, message: str) -> None:
    errors = errors_of(write(f"admin: {{allowed_destinations: [{cidr!r}]}}\n{MINIMAL}"))

    assert errors == {"admin.allowed_destinations[0]": message}


def test_allowed_connections_must_be_connection_ids(write) -> None:
    errors = errors_of(write(f"admin: {{allowed_connections: [vco-abc1, vpn-abc1]}}\n{MINIMAL}"))

    assert set(errors) == {"admin.allowed_connections[1]"}


@pytest.mark.parametrize(
    "endpoint",
    [
        "vpc-vpc.{region_id}.aliyuncs.com",
        "http://127.0.0.1:8080",
        "https://vpc.{region_id}.example/",
    ],
)
def test_endpoint_may_be_a_template_with_a_scheme(write, endpoint: str) -> None:
    config = load_config(write(f"api: {{endpoint: {endpoint!r}}}\n{MINIMAL}"), {})

    assert config.api.endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint",
    ["vpc.{region}.aliyuncs.com", "ftp://host", "http://host/path", "http://", "https://u:p@host"],
)
def test_malformed_endpoint_is_refused(write, endpoint: str) -> None:
    assert set(errors_of(write(f"api: {{endpoint: {endpoint!r}}}\n{MINIMAL}"))) == {"api.endpoint"}


def test_ca_file_is_relative_to_the_config_file(write, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("cert")

    config = load_config(write(f"api: {{ca_file: ca.pem}}\n{MINIMAL}"), {})

    assert config.api.ca_file == tmp_path / "ca.pem"


def test_missing_ca_file_is_an_error(write) -> None:
    assert errors_of(write(f"api: {{ca_file: nowhere.pem}}\n{MINIMAL}")) == {
        "api.ca_file": "no such file"
    }


def test_proxy_error_does_not_quote_the_proxy_url(write) -> None:
    errors = errors_of(write(f"api: {{proxy: 'ftp://user:{quote(SECRET)}@proxy'}}\n{MINIMAL}"))

    assert set(errors) == {"api.proxy"}
    assert "user" not in errors["api.proxy"]


# --- cross-references and names ---------------------------------------------------------


def test_target_naming_an_undefined_profile_is_an_error_at_its_field(write) -> None:
    path = write(
        """
        credentials: {prod: {source: default}}
        targets:
          - {region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}
          - {region_id: cn-hangzhou, credentials: staging, gateways: [vpn-b]}
        """
    )

    assert errors_of(path) == {
        "targets[1].credentials": "no credentials profile named 'staging' (defined: prod)"
    }


def test_default_profile_is_not_implied_when_profiles_are_given(write) -> None:
    path = write(
        """
        credentials: {prod: {source: default}}
        targets: [{region_id: cn-hangzhou, gateways: [vpn-a]}]
        """
    )

    assert set(errors_of(path)) == {"targets[0].credentials"}


def test_base_profile_must_exist(write) -> None:
    path = write(
        """
        credentials:
          prod: {source: ram_role_arn, role_arn: "acs:ram::1:role/x", base_profile: nobody}
        targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
        """
    )

    assert errors_of(path) == {
        "credentials.prod.base_profile": "no credentials profile named 'nobody'"
    }


def test_base_profiles_must_not_loop(write) -> None:
    path = write(
        """
        credentials:
          a: {source: ram_role_arn, role_arn: "acs:ram::1:role/a", base_profile: b}
          b: {source: ram_role_arn, role_arn: "acs:ram::1:role/b", base_profile: a}
        targets: [{region_id: cn-hangzhou, credentials: a, gateways: [vpn-a]}]
        """
    )

    errors = errors_of(path)

    assert errors["credentials.a.base_profile"].endswith("a -> b -> a")
    assert errors["credentials.b.base_profile"].endswith("b -> a -> b")


def test_a_role_may_be_assumed_with_another_profiles_keys(write) -> None:
    config = load_config(
        write(
            """
            credentials:
              keys: {source: access_key, access_key_id: id, access_key_secret: secret}
              prod: {source: ram_role_arn, role_arn: "acs:ram::1:role/x", base_profile: keys}
            targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
            """
        ),
        {},
    )

    prod = config.credentials["prod"]
    assert isinstance(prod, RamRoleArnProfile)
    assert prod.base_profile == "keys"
    assert prod.session_duration == 3600.0


def test_role_session_shorter_than_sts_allows_is_refused(write) -> None:
    path = write(
        """
        credentials:
          prod: {source: ram_role_arn, role_arn: "acs:ram::1:role/x", session_duration: 5m}
        targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
        """
    )

    assert set(errors_of(path)) == {"credentials.prod.session_duration"}


def test_at_least_one_target_is_needed(write) -> None:
    assert errors_of(write("poll: {interval: 1m}")) == {
        "targets": "at least one target is needed (unless only the admin API is enabled)"
    }


def test_an_admin_only_exporter_needs_no_target(write) -> None:
    config = load_config(write("admin: {enabled: true}"), {})

    assert config.targets == ()


def test_empty_file_needs_a_target(write) -> None:
    assert set(errors_of(write(""))) == {"targets"}


def test_target_needs_gateways_or_discovery(write) -> None:
    assert errors_of(write("targets: [{region_id: cn-hangzhou}]")) == {
        "targets[0]": "a target needs gateways, a discover section, or both"
    }


def test_discovery_only_target_is_valid(write) -> None:
    config = load_config(
        write(
            """
            targets:
              - region_id: cn-hangzhou
                discover:
                  tags: {env: prod}
                  vpc_ids: [vpc-abc]
                  resource_group_id: rg-abc
                  statuses: [active]
            """
        ),
        {},
    )

    discover = config.targets[0].discover
    assert discover is not None
    assert (discover.vpc_ids, discover.resource_group_id, discover.statuses) == (
        ("vpc-abc",),
        "rg-abc",
        ("active",),
    )
    assert discover.interval == 900.0


def test_gateway_listed_twice_in_one_target_is_an_error(write) -> None:
    path = write("targets: [{region_id: cn-hangzhou, gateways: [vpn-a, vpn-b, vpn-a]}]")

    assert errors_of(path) == {"targets[0].gateways[2]": "listed twice"}


def test_gateway_listed_by_two_targets_is_an_error(write) -> None:
    path = write(
        """
        targets:
          - {region_id: cn-hangzhou, gateways: [vpn-a]}
          - {region_id: cn-hangzhou, name: other, gateways: [vpn-b, vpn-a]}
        """
    )

    assert errors_of(path) == {"targets[1].gateways[1]": "vpn-a is also listed by targets[0]"}


def test_default_target_names_are_made_unique(write) -> None:
    config = load_config(
        write(
            """
            targets:
              - {region_id: cn-hangzhou, gateways: [vpn-a]}
              - {region_id: cn-hangzhou, gateways: [vpn-b]}
              - {region_id: cn-hangzhou, gateways: [vpn-c], name: "default/cn-hangzhou#2"}
              - {region_id: cn-shanghai, gateways: [vpn-d]}
            """
        ),
        {},
    )

    assert [target.name for target in config.targets] == [
        "default/cn-hangzhou",
        "default/cn-hangzhou#3",
        "default/cn-hangzhou#2",
        "default/cn-shanghai",
    ]


def test_explicit_target_names_must_be_unique(write) -> None:
    path = write(
        """
        targets:
          - {name: prod, region_id: cn-hangzhou, gateways: [vpn-a]}
          - {name: prod, region_id: cn-shanghai, gateways: [vpn-b]}
        """
    )

    assert errors_of(path) == {"targets[1].name": "also the name of targets[0]"}


# --- YAML ---------------------------------------------------------------------------------


def test_yaml_syntax_error_gives_the_line_but_not_the_text(write) -> None:
    path = write(f'credentials:\n  k: {{source: access_key, access_key_secret: "{SECRET}\n')

    with pytest.raises(ConfigError) as caught:
        load_config(path, {})

    (message,) = (message for _, message in caught.value.errors)
    assert message.startswith(f"{path}:")
    assert ":3:" in message or ":2:" in message
    assert "S3cr3t" not in message


def test_duplicate_keys_are_an_error_with_their_line(write) -> None:
    path = write("poll: {interval: 1m}\ntargets: []\npoll: {interval: 2m}\n")

    with pytest.raises(ConfigError, match=r"config.yaml:3:1: found the key 'poll' twice"):
        load_config(path, {})


def test_merge_keys_may_override_what_they_merge(write) -> None:
    config = load_config(
        write(
            """
            targets:
              - &hangzhou {region_id: cn-hangzhou, gateways: [vpn-a], interval: 1m}
              - {<<: *hangzhou, name: second, gateways: [vpn-b]}
            """
        ),
        {},
    )

    assert [(t.region_id, t.gateways, t.interval) for t in config.targets] == [
        ("cn-hangzhou", ("vpn-a",), 60.0),
        ("cn-hangzhou", ("vpn-b",), 60.0),
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.yaml", {})


def test_top_level_must_be_a_mapping(write) -> None:
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write("- a\n- b\n"), {})


# --- !env and !file -----------------------------------------------------------------------


PROFILE_WITH_TAGS = """
credentials:
  prod:
    source: access_key
    access_key_id: !env PROD_KEY_ID
    access_key_secret: !file secrets/prod.secret
    security_token: !env PROD_TOKEN
targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
"""


def test_env_and_file_tags_supply_secrets(write, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod.secret").write_text(SECRET + "\n")

    config = load_config(write(PROFILE_WITH_TAGS), {"PROD_KEY_ID": "AKID1", "PROD_TOKEN": "tok"})

    prod = config.credentials["prod"]
    assert isinstance(prod, AccessKeyProfile)
    assert prod.access_key_id.get_secret_value() == "AKID1"
    assert prod.access_key_secret.get_secret_value() == SECRET
    assert prod.security_token is not None
    assert prod.security_token.get_secret_value() == "tok"


def test_unset_variable_and_unreadable_file_are_reported_at_their_keys(
    write, tmp_path: Path
) -> None:
    errors = errors_of(write(PROFILE_WITH_TAGS), {"PROD_TOKEN": "tok"})

    assert errors == {
        "credentials.prod.access_key_id": (
            "environment variable PROD_KEY_ID is not set (!env, line 5)"
        ),
        "credentials.prod.access_key_secret": (
            f"cannot read {tmp_path / 'secrets' / 'prod.secret'}: "
            "No such file or directory (!file, line 6)"
        ),
    }


def test_empty_secret_is_refused(write, tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "prod.secret").write_text("\n")

    errors = errors_of(write(PROFILE_WITH_TAGS), {"PROD_KEY_ID": "id", "PROD_TOKEN": "tok"})

    assert errors == {"credentials.prod.access_key_secret": "must not be empty"}


def test_env_tag_works_for_any_value(write) -> None:
    config = load_config(write(f"poll: {{interval: !env POLL}}\n{MINIMAL}"), {"POLL": "90s"})

    assert config.poll.interval == 90.0


def test_tag_needs_a_scalar(write) -> None:
    with pytest.raises(ConfigError, match=r"config.yaml:1:\d+: !env needs the name"):
        load_config(write(f"poll: !env [A]\n{MINIMAL}"), {})


# --- environment overrides ----------------------------------------------------------------


def test_env_overrides_nested_keys_and_list_items(write) -> None:
    config = load_config(
        write(MINIMAL),
        {
            "ALIYUN_VPN_EXPORTER_POLL__INTERVAL": "1m",
            "ALIYUN_VPN_EXPORTER_API__MAX_RETRIES": "2",
            "ALIYUN_VPN_EXPORTER_TARGETS__0__INTERVAL": "30s",
            "ALIYUN_VPN_EXPORTER_API__RATE_LIMITS__GetVpnGatewayDiagnoseResult": "60/min",
            "ALIYUN_VPN_EXPORTER_ADMIN__ALLOWED_DESTINATIONS": '["10.0.0.0/8", "192.168.0.0/16"]',
            "ALIYUN_VPN_EXPORTER_DIAGNOSE__ENABLED": "true",
        },
    )

    assert config.poll.interval == 60.0
    assert config.api.max_retries == 2
    assert config.targets[0].interval == 30.0
    assert config.api.rate_limits == {"GetVpnGatewayDiagnoseResult": Rate(60, 60.0)}
    assert len(config.admin.allowed_destinations) == 2
    assert config.diagnose.enabled is True


def test_env_override_matches_existing_map_keys_in_any_case(write) -> None:
    path = write(
        """
        credentials:
          prod-cn: {source: access_key, access_key_id: id, access_key_secret: from-file}
        targets: [{region_id: cn-hangzhou, credentials: prod-cn, gateways: [vpn-a]}]
        """
    )

    config = load_config(
        path, {"ALIYUN_VPN_EXPORTER_CREDENTIALS__PROD_CN__ACCESS_KEY_SECRET": "from-env"}
    )

    profile = config.credentials["prod-cn"]
    assert isinstance(profile, AccessKeyProfile)
    assert profile.access_key_secret.get_secret_value() == "from-env"


def test_env_override_wins_over_an_env_tag(write) -> None:
    config = load_config(
        write(f"poll: {{interval: !env UNSET}}\n{MINIMAL}"),
        {"ALIYUN_VPN_EXPORTER_POLL__INTERVAL": "2m"},
    )

    assert config.poll.interval == 120.0


def test_misspelt_env_override_is_an_error_naming_the_variable(write) -> None:
    errors = errors_of(write(MINIMAL), {"ALIYUN_VPN_EXPORTER_POLL__INTREVAL": "1m"})

    assert errors == {
        "poll.intreval": (
            "unknown key (did you mean 'interval'?) (from ALIYUN_VPN_EXPORTER_POLL__INTREVAL)"
        )
    }


def test_invalid_env_override_value_names_the_variable(write) -> None:
    errors = errors_of(write(MINIMAL), {"ALIYUN_VPN_EXPORTER_POLL__INTERVAL": "soon"})

    assert errors["poll.interval"].endswith("(from ALIYUN_VPN_EXPORTER_POLL__INTERVAL)")


def test_env_override_of_a_missing_list_item_is_an_error(write) -> None:
    errors = errors_of(write(MINIMAL), {"ALIYUN_VPN_EXPORTER_TARGETS__3__INTERVAL": "1m"})

    assert errors == {"targets": "ALIYUN_VPN_EXPORTER_TARGETS__3__INTERVAL: no item 3 in this list"}


def test_env_override_of_a_list_needs_json(write) -> None:
    errors = errors_of(
        write(MINIMAL), {"ALIYUN_VPN_EXPORTER_ADMIN__ALLOWED_DESTINATIONS": "10.0.0.0/8"}
    )

    assert errors == {
        "admin.allowed_destinations": (
            "ALIYUN_VPN_EXPORTER_ADMIN__ALLOWED_DESTINATIONS: a list or mapping is given as JSON"
        )
    }


def test_variables_without_a_key_path_are_not_overrides(write) -> None:
    config = load_config(write(MINIMAL), {"ALIYUN_VPN_EXPORTER_LOG_LEVEL": "debug"})

    assert config.poll.interval == 300.0


# --- --check-config -------------------------------------------------------------------


SECRET_CONFIG = """
credentials:
  prod:
    source: access_key
    access_key_id: !env KEY_ID
    access_key_secret: !env KEY_SECRET
  role:
    source: ram_role_arn
    role_arn: "acs:ram::1:role/x"
    external_id: !env KEY_SECRET
    base_profile: prod
api:
  proxy: !env PROXY
targets:
  - {region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}
  - {region_id: cn-shanghai, credentials: role, discover: {}, interval: 1m}
"""


def test_check_config_prints_a_summary_and_exits_0(write) -> None:
    code, report = check_config(
        write(SECRET_CONFIG),
        {"KEY_ID": "AKID", "KEY_SECRET": SECRET, "PROXY": f"http://u:{quote(SECRET)}@proxy:3128"},
    )

    assert code == 0
    assert report.splitlines()[0].endswith("config.yaml: OK")
    assert "prod (access_key), role (ram_role_arn)" in report
    assert "prod/cn-hangzhou" in report
    assert "role/cn-shanghai" in report


def test_check_config_lists_what_is_wrong_and_exits_1(write) -> None:
    path = write("poll: {interval: soon}\ntargets: [{region_id: cn-hangzhou, gatways: [vpn-a]}]")

    code, report = check_config(path, {})

    assert code == 1
    assert report.splitlines() == [
        f"{path}: invalid configuration",
        "  poll.interval: invalid duration: use seconds, or a number with a unit (ms, s, m, h, d)"
        " such as 30s, 5m, 1h30m or 500ms",
        "  targets[0].gatways: unknown key (did you mean 'gateways'?)",
    ]


@pytest.mark.parametrize(
    "breakage",
    [
        "",  # valid
        "  bogus: {}\n",  # an unknown key elsewhere
        "  broken: {source: default, extra: !env KEY_SECRET}\n",  # under an unknown key
        "  bad: {source: !env KEY_SECRET}\n",  # the secret where a source belongs
        "  bad2: {source: ram_role_arn, role_arn: !env KEY_SECRET}\n",  # where an ARN belongs
        "  bad3: {source: access_key, access_key_id: [!env KEY_SECRET], access_key_secret: x}\n",
    ],
)
def test_no_secret_reaches_check_config_output_in_any_encoding(write, breakage: str) -> None:
    text = SECRET_CONFIG.replace("credentials:\n", "credentials:\n" + breakage, 1)
    environ = {
        "KEY_ID": "AKID",
        "KEY_SECRET": SECRET,
        "PROXY": f"http://u:{quote(SECRET, safe='')}@proxy:3128",
        "ALIYUN_VPN_EXPORTER_CREDENTIALS__PROD__SECURITY_TOKEN": SECRET,
    }

    code, report = check_config(write(text), environ)

    assert code == (0 if not breakage else 1)
    for form in encodings(SECRET):
        assert form not in report


def test_no_secret_reaches_repr_str_or_json_of_the_config(write) -> None:
    config = load_config(
        write(SECRET_CONFIG),
        {
            "KEY_ID": "AKID",
            "KEY_SECRET": SECRET,
            "PROXY": f"http://u:{quote(SECRET, safe='')}@proxy",
        },
    )

    for text in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        for form in [*encodings(SECRET), quote(SECRET, safe="")]:
            assert form not in text


def test_no_secret_reaches_a_config_error_or_its_traceback(write) -> None:
    path = write(
        SECRET_CONFIG.replace('role_arn: "acs:ram::1:role/x"', "role_arn: !env KEY_SECRET")
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, {"KEY_ID": "AKID", "KEY_SECRET": SECRET, "PROXY": "http://proxy"})

    # Nothing chained: a traceback shows no pydantic error with its input.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    for form in encodings(SECRET):
        assert form not in str(caught.value)
        assert form not in repr(caught.value)
