"""The exporter's configuration: a YAML file, environment overrides, strict pydantic models.

Loading (`load_config`) goes in four steps, and every problem found on the way is kept, so
one `ConfigError` lists all of them, one `path: message` per line (`targets[1].gatways:
unknown key (did you mean 'gateways'?)`):

1. The YAML file is parsed. Duplicate keys are errors (PyYAML would silently keep the last
   one). Two tags keep secrets out of the file: `!env NAME` is the value of the
   environment variable `NAME`; `!file PATH` is the content of a file (trailing newlines
   removed; a relative path is relative to the config file, as in Prometheus).
2. Environment overrides are applied. A variable named `ALIYUN_VPN_EXPORTER_` followed by
   a path whose steps are joined by a double underscore sets that key, whatever the file
   says::

       ALIYUN_VPN_EXPORTER_POLL__INTERVAL=1m
       ALIYUN_VPN_EXPORTER_TARGETS__0__INTERVAL=30s          # list items by index
       ALIYUN_VPN_EXPORTER_CREDENTIALS__PROD__ACCESS_KEY_SECRET=...
       ALIYUN_VPN_EXPORTER_API__RATE_LIMITS__GetVpnGatewayDiagnoseResult=96/min
       ALIYUN_VPN_EXPORTER_ADMIN__ALLOWED_DESTINATIONS='["10.0.0.0/8"]'

   Steps that name a field match it in any case; steps that name a map key (a profile, an
   action) match an existing key in any case, with `-` and `_` alike, or else are taken as
   written. A list item must already exist in the file. Values are strings, which the
   models convert (numbers, booleans, durations); where the path ends at a list or a
   mapping the value is JSON. Only names with a `__` after the prefix are overrides (other
   `ALIYUN_VPN_EXPORTER_*` variables are left to the command line), and an override that
   names no known key is an error like any misspelt key in the file.
3. `!env`/`!file` values are read.
4. The models validate the result, then the cross-references (profiles named by targets,
   unique target names, a gateway listed once).

Secrets (`SecretStr`) never reach an error message, `repr`, or `model_dump_json()`: error
messages are built from pydantic's message only, never from the input, and YAML errors
carry the line and column but not the offending text.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import string
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, TypeAlias
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

ENV_PREFIX = "ALIYUN_VPN_EXPORTER_"
"""Prefix of the environment variables that override config keys (see the module doc)."""

PathPart: TypeAlias = str | int
Loc: TypeAlias = tuple[PathPart, ...]


class ConfigError(Exception):
    """An unusable configuration, with every problem found as a `(path, message)` pair.

    `path` is the key's full path (`targets[1].gateways[0]`), or empty for problems of the
    file as a whole.
    """

    def __init__(self, errors: Iterable[tuple[str, str]]) -> None:
        self.errors: tuple[tuple[str, str], ...] = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{path}: {message}" if path else message for path, message in self.errors)


def _invalid(kind: str, message: str) -> PydanticCustomError:
    # The message goes in through the context: a template would treat `{region_id}` in a
    # message as a placeholder.
    return PydanticCustomError(kind, "{reason}", {"reason": message})


# --- reusable annotated types -------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNIT_SECONDS)
_DURATION_HELP = (
    "invalid duration: use seconds, or a number with a unit (ms, s, m, h, d) "
    "such as 30s, 5m, 1h30m or 500ms"
)


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `5m`, `1h30m`, `500ms`, `1d`, or a plain number of seconds.

    Units go from largest to smallest, each at most once (Prometheus' rule), so `30m1h` is
    an error rather than a guess.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid("duration", _DURATION_HELP)
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _duration_from_units(text)
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise _invalid("duration", _DURATION_HELP)
    return seconds


def _duration_from_units(text: str) -> float:
    total, position, last_rank = 0.0, 0, -1
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise _invalid("duration", _DURATION_HELP)
        rank = _UNIT_ORDER.index(match[2])
        if rank <= last_rank:
            raise _invalid("duration", "invalid duration: units must go from largest to smallest")
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position, last_rank = match.end(), rank
    if position == 0:
        raise _invalid("duration", _DURATION_HELP)
    return total


def format_duration(seconds: float) -> str:
    """The shortest `1h30m`-style text for `seconds` (whole milliseconds round-trip)."""
    millis = round(seconds * 1000)
    if millis < 0 or not math.isclose(millis, seconds * 1000, abs_tol=1e-6):
        return f"{seconds}s"
    if millis == 0:
        return "0s"
    parts = []
    for unit in _UNIT_ORDER:
        size = round(_UNIT_SECONDS[unit] * 1000)
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""A duration in float seconds, written `30s`, `5m`, `1h30m`, `500ms` or as plain seconds."""

PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A `Duration` that must be longer than zero (intervals, timeouts)."""


class Rate(NamedTuple):
    """`calls` per `period` seconds: `96/min` is `Rate(96, 60.0)`."""

    calls: int
    period: float

    def __str__(self) -> str:
        return f"{self.calls}/{format_duration(self.period)}"


_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S+)\s*")
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE_HELP = "invalid rate: use calls/period, such as 96/min, 2/s or 600/60s"


def parse_rate(value: object) -> object:
    """`Rate` from `96/min`, `2/s`, `10/h` or `600/60s`; a `(calls, period)` pair passes."""
    if not isinstance(value, str):
        return value
    match = _RATE.fullmatch(value)
    if match is None:
        raise _invalid("rate", _RATE_HELP)
    period = _RATE_UNITS.get(match[2])
    if period is None:
        try:
            period = parse_duration(match[2])
        except PydanticCustomError:
            raise _invalid("rate", _RATE_HELP) from None
    return Rate(int(match[1]), period)


def _positive_rate(rate: Rate) -> Rate:
    if rate.calls <= 0 or rate.period <= 0:
        raise _invalid("rate", "invalid rate: calls and period must be more than zero")
    return rate


RateLimit = Annotated[Rate, BeforeValidator(parse_rate), AfterValidator(_positive_rate)]
"""A call rate, written `96/min`, `2/s` or `600/60s`, read as `Rate(calls, period)`."""


def _matching(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise _invalid("invalid_format", message)
        return value

    return AfterValidator(check)


RegionId = Annotated[
    str,
    _matching(
        r"[a-z]{2,}(?:-[a-z0-9]+){1,5}", "not a region ID (like cn-hangzhou or ap-southeast-1)"
    ),
]
VpnGatewayId = Annotated[
    str, _matching(r"vpn-[a-z0-9]+", "not a VPN gateway ID (vpn- and lowercase letters or digits)")
]
VpnConnectionId = Annotated[
    str,
    _matching(r"vco-[a-z0-9]+", "not a VPN connection ID (vco- and lowercase letters or digits)"),
]
VpcId = Annotated[
    str, _matching(r"vpc-[a-z0-9]+", "not a VPC ID (vpc- and lowercase letters or digits)")
]
ResourceGroupId = Annotated[
    str, _matching(r"rg-[a-z0-9]+", "not a resource group ID (rg- and lowercase letters or digits)")
]
ApiAction = Annotated[
    str,
    _matching(r"[A-Z][A-Za-z0-9]*", "not an API action name (like GetVpnGatewayDiagnoseResult)"),
]
ProfileName = Annotated[
    str,
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "not a profile name (letters, digits, '_', '.', '-'; up to 64)",
    ),
]
TargetName = Annotated[
    str, _matching(r"[^\x00-\x1f\x7f]{1,128}", "must be 1 to 128 characters, none of them control")
]
GatewayStatus = Annotated[
    str, _matching(r"[a-z][a-z_]*", "not a gateway status (a lowercase word such as active)")
]
RoleArn = Annotated[
    str, _matching(r"acs:ram::\d+:role/\S+", "not a RAM role ARN (acs:ram::<account>:role/<name>)")
]
RoleSessionName = Annotated[
    str,
    _matching(r"[\w.@-]{2,64}", "not a role session name (2 to 64 letters, digits, '.@-_')"),
]
StsEndpoint = Annotated[
    str, _matching(r"[A-Za-z0-9.-]+(?::\d{1,5})?", "not an endpoint host (host or host:port)")
]
OidcProviderArn = Annotated[
    str,
    _matching(
        r"acs:ram::\d+:oidc-provider/\S+",
        "not an OIDC provider ARN (acs:ram::<account>:oidc-provider/<name>)",
    ),
]
AccountId = Annotated[str, _matching(r"\d{1,32}", "not an Alibaba Cloud account ID (digits)")]
RamRoleName = Annotated[
    str, _matching(r"[A-Za-z0-9.-]{1,64}", "not a RAM role name (letters, digits, '.', '-')")
]
TagKey = Annotated[str, Field(min_length=1, max_length=128)]


def _non_empty_secret(value: SecretStr) -> SecretStr:
    if not value.get_secret_value():
        raise _invalid("secret_empty", "must not be empty")
    return value


Secret = Annotated[SecretStr, AfterValidator(_non_empty_secret)]
"""A secret: hidden in `repr`, `str` and JSON dumps; typically given with `!env` or `!file`."""


def _check_endpoint(template: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields - {"region_id"}:
        raise _invalid("endpoint", "the only placeholder an endpoint may hold is {region_id}")
    url = template.replace("{region_id}", "cn-hangzhou")
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(
            "endpoint", "not an endpoint: host[:port], optionally with http:// or https://"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise _invalid("endpoint", "an endpoint is a scheme, host and port only")
    return template


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
"""A VPC API endpoint, optionally a template with `{region_id}` and a scheme."""


def _check_proxy(value: SecretStr) -> SecretStr:
    # The proxy URL may carry a password: the messages describe, never quote.
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise _invalid("proxy", "not a proxy URL (http://, https:// or socks5:// and a host)")
    return value


ProxyUrl = Annotated[SecretStr, AfterValidator(_check_proxy)]


def _readable_file(value: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base_dir is None else Path(base_dir) / value
    if not path.is_file():
        raise _invalid("file", "no such file")
    return path


ConfigFile = Annotated[Path, AfterValidator(_readable_file)]
"""An existing file; a relative path is relative to the config file."""


def _parse_cidr(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.IPv4Network(value.strip())
    except ipaddress.NetmaskValueError:
        raise _invalid("cidr", "not an IPv4 CIDR (invalid prefix length)") from None
    except ValueError as error:
        if "has host bits set" in str(error):
            raise _invalid("cidr", "not a network address: host bits are set") from None
        raise _invalid("cidr", "not an IPv4 CIDR (like 10.0.0.0/8)") from None


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_parse_cidr)]
"""An IPv4 network in CIDR notation with no host bits set (`10.0.0.0/8`)."""


# --- models -----------------------------------------------------------------------------


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, and
    validation errors never carry the input (it may be a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _Profile(StrictModel):
    """What every credentials profile has besides its source."""

    account_id: AccountId | None = None
    """The Alibaba Cloud account the profile's calls count against. The API throttles per
    account and region, so profiles of one account share one rate budget. None: the
    account in `role_arn` when the profile has one, else the profile counts as an account
    of its own."""


class DefaultProfile(_Profile):
    """The official `alibabacloud-credentials` chain: environment variables, OIDC/RRSA,
    the aliyun CLI profile, `~/.alibabacloud/credentials.ini`, the ECS RAM role (unless
    `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`) and `ALIBABA_CLOUD_CREDENTIALS_URI`."""

    source: Literal["default"] = "default"


class AccessKeyProfile(_Profile):
    """A fixed AccessKey pair, with an STS token when the pair is temporary."""

    source: Literal["access_key"] = "access_key"
    access_key_id: Secret
    access_key_secret: Secret
    security_token: Secret | None = None


class RamRoleArnProfile(_Profile):
    """Credentials of a RAM role assumed with STS AssumeRole, refreshed before they expire.

    `base_profile` names the profile whose credentials call AssumeRole; without it the
    official default chain does.
    """

    source: Literal["ram_role_arn"] = "ram_role_arn"
    role_arn: RoleArn
    external_id: Secret | None = None
    role_session_name: RoleSessionName = "aliyun-vpn-exporter"
    session_duration: Annotated[Duration, Field(ge=900, le=43200)] = 3600.0
    base_profile: ProfileName | None = None
    sts_endpoint: StsEndpoint | None = None


class OidcProfile(_Profile):
    """A RAM role assumed with an OIDC token (STS AssumeRoleWithOIDC): RRSA on ACK.

    Each setting left out is read from the variable RRSA injects into the pod:
    `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`,
    `ALIBABA_CLOUD_OIDC_TOKEN_FILE`. The token file is re-read at every refresh.
    """

    source: Literal["oidc"] = "oidc"
    role_arn: RoleArn | None = None
    oidc_provider_arn: OidcProviderArn | None = None
    oidc_token_file: Path | None = None
    role_session_name: RoleSessionName = "aliyun-vpn-exporter"
    session_duration: Annotated[Duration, Field(ge=900, le=43200)] = 3600.0
    sts_endpoint: StsEndpoint | None = None


class EcsRamRoleProfile(_Profile):
    """The RAM role of the ECS instance the exporter runs on, from the metadata service
    (100.100.100.200), refreshed when asked (no background thread)."""

    source: Literal["ecs_ram_role"] = "ecs_ram_role"
    role_name: RamRoleName | None = None
    """None: the role the metadata service names."""
    disable_imds_v1: bool = False
    """True: only the token-protected (IMDSv2) metadata requests."""


def _check_credentials_uri(value: SecretStr) -> SecretStr:
    # The URI may carry a token in its query: the messages describe, never quote.
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("credentials_uri", "not an http:// or https:// URL")
    return value


class CredentialsUriProfile(_Profile):
    """Credentials served by a local HTTP endpoint (the `ALIBABA_CLOUD_CREDENTIALS_URI`
    protocol: JSON with `AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`)."""

    source: Literal["credentials_uri"] = "credentials_uri"
    uri: Annotated[SecretStr, AfterValidator(_check_credentials_uri)]


CredentialsProfile = Annotated[
    DefaultProfile
    | AccessKeyProfile
    | RamRoleArnProfile
    | OidcProfile
    | EcsRamRoleProfile
    | CredentialsUriProfile,
    Field(discriminator="source"),
]
"""A named credentials profile; `source` says which kind."""


class PollConfig(StrictModel):
    """How often gateways are polled, and how long their data outlives failed polls."""

    interval: PositiveDuration = 300.0
    stale_after: PositiveDuration | None = None
    """None: 3 times the effective interval (what the rate budget allows)."""
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Fraction of the interval by which a run may start late, so targets drift apart."""


class ApiConfig(StrictModel):
    """How the VPC API is called: timeouts, retries, endpoint, transport and budgets."""

    timeout: PositiveDuration = 10.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    endpoint: Endpoint | None = None
    """None: the public regional endpoint (`vpc.{region_id}.aliyuncs.com`)."""
    proxy: ProxyUrl | None = None
    ca_file: ConfigFile | None = None
    rate_limits: dict[ApiAction, RateLimit] = {}
    """The exporter's own budget per action, used as given; other actions get
    `budget_fraction` of their published limit."""
    budget_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8
    max_response_bytes: Annotated[ByteSize, Field(gt=0)] = ByteSize(8 * 1024 * 1024)


class DiscoverConfig(StrictModel):
    """Which gateways of the target's account and region DescribeVpnGateways finds."""

    tags: Annotated[dict[Annotated[str, Field(min_length=1)], str], Field(max_length=20)] = {}
    vpc_ids: tuple[VpcId, ...] = ()
    resource_group_id: ResourceGroupId | None = None
    statuses: tuple[GatewayStatus, ...] = ()
    interval: PositiveDuration = 900.0


class Target(StrictModel):
    """Gateways of one account (credentials profile) in one region, listed or discovered.

    `name` is the `target` label. Left out, the `Config` gives it `<profile>/<region_id>`,
    with `#2`, `#3`… when several targets would share that name.
    """

    name: TargetName = ""
    region_id: RegionId
    credentials: ProfileName = "default"
    gateways: tuple[VpnGatewayId, ...] = ()
    interval: PositiveDuration | None = None
    """None: `poll.interval`."""
    discover: DiscoverConfig | None = None

    @field_validator("gateways")
    @classmethod
    def _listed_once(cls, gateways: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        problems: list[tuple[Loc, str]] = []
        for index, gateway in enumerate(gateways):
            if gateway in seen:
                problems.append(((index,), "listed twice"))
            seen.add(gateway)
        _raise_problems(problems)
        return gateways

    @model_validator(mode="after")
    def _has_gateways(self) -> Target:
        if not self.gateways and self.discover is None:
            raise _invalid("target_empty", "a target needs gateways, a discover section, or both")
        return self


class IpsecExtendInfo(StrictModel):
    """The two private IPs a diagnosis probes between (DiagnoseVpnGateway `IPsecExtendInfo`);
    the VcoPrivateConnectivity item needs them."""

    private_source_ip: ipaddress.IPv4Address
    """On the VPC side (`PrivateSourceIp`)."""
    private_destination_ip: ipaddress.IPv4Address
    """On the on-premises side (`PrivateDestinationIp`)."""


class DiagnoseConfig(StrictModel):
    """Scheduled diagnoses (DiagnoseVpnGateway) of every connection; off by default.

    Each connection of every polled gateway is diagnosed once per `interval` (the starts
    spread over it), and the diagnosis is read by its DiagnoseId every `result_interval`
    until it has finished all its items or `timeout` has passed.
    """

    enabled: bool = False
    interval: PositiveDuration = 3600.0
    timeout: PositiveDuration = 300.0
    result_interval: PositiveDuration = 5.0
    connections: dict[VpnConnectionId, IpsecExtendInfo] = {}
    """`IPsecExtendInfo` per connection; connections not listed are diagnosed without it."""

    @model_validator(mode="after")
    def _reads_fit_the_timeout(self) -> DiagnoseConfig:
        if self.result_interval >= self.timeout:
            raise _invalid("diagnose_timeout", "result_interval must be shorter than timeout")
        if self.timeout >= self.interval:
            raise _invalid("diagnose_timeout", "timeout must be shorter than interval")
        return self


_LABEL_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")


def tag_label_name(tag_key: str) -> str:
    """The label of `aliyun_vpn_gateway_info` a tag becomes: `tag_` and the key with every
    character not allowed in a label name as `_` (`app.kubernetes.io/name` →
    `tag_app_kubernetes_io_name`), as kube-state-metrics names Kubernetes labels."""
    return "tag_" + _LABEL_CHARACTER.sub("_", tag_key)


class GatewayInfoConfig(StrictModel):
    """What `aliyun_vpn_gateway_info` carries besides name, VPC, spec and status."""

    tags: tuple[TagKey, ...] = ()
    """Tag keys exported as `tag_<key>` labels (an allow-list: tags are free-form, and
    every label value is a series)."""

    @field_validator("tags")
    @classmethod
    def _distinct_labels(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for index, tag in enumerate(tags):
            label = tag_label_name(tag)
            if label in seen:
                problems.append(
                    ((index,), f"becomes the label {label}, as tags[{seen[label]}] does")
                )
            else:
                seen[label] = index
        _raise_problems(problems)
        return tags


class AdminConfig(StrictModel):
    """The route-add admin API; off by default.

    Empty allow-lists restrict nothing by themselves; the admin API's own rules
    (no `0.0.0.0/0`, nothing touching `100.64.0.0/10`) always apply.
    """

    enabled: bool = False
    allowed_connections: tuple[VpnConnectionId, ...] = ()
    allowed_destinations: tuple[Cidr, ...] = ()


def _implied_credentials() -> dict[str, CredentialsProfile]:
    return {"default": DefaultProfile()}


class Config(StrictModel):
    """The whole configuration. Without a `credentials` section a `default` profile using
    the official chain is implied; at least one target is needed unless the exporter only
    serves the admin API."""

    credentials: dict[ProfileName, CredentialsProfile] = Field(default_factory=_implied_credentials)
    poll: PollConfig = PollConfig()
    api: ApiConfig = ApiConfig()
    targets: tuple[Target, ...] = ()
    diagnose: DiagnoseConfig = DiagnoseConfig()
    gateway_info: GatewayInfoConfig = GatewayInfoConfig()
    admin: AdminConfig = AdminConfig()

    @field_validator("credentials")
    @classmethod
    def _check_base_profiles(
        cls, profiles: dict[str, CredentialsProfile]
    ) -> dict[str, CredentialsProfile]:
        problems: list[tuple[Loc, str]] = []
        for name, profile in profiles.items():
            if isinstance(profile, RamRoleArnProfile) and profile.base_profile is not None:
                problem = _base_profile_problem(profiles, name, profile.base_profile)
                if problem:
                    problems.append(((name, profile.source, "base_profile"), problem))
        _raise_problems(problems)
        return profiles

    @field_validator("targets")
    @classmethod
    def _check_and_name_targets(
        cls, targets: tuple[Target, ...], info: ValidationInfo
    ) -> tuple[Target, ...]:
        problems: list[tuple[Loc, str]] = []
        profiles = info.data.get("credentials")  # absent when that section is invalid
        if profiles is not None:
            defined = ", ".join(sorted(profiles)) or "none"
            problems += [
                (
                    (index, "credentials"),
                    f"no credentials profile named {target.credentials!r} (defined: {defined})",
                )
                for index, target in enumerate(targets)
                if target.credentials not in profiles
            ]
        named: dict[str, int] = {}
        for index, target in enumerate(targets):
            if target.name in named:
                problems.append(
                    ((index, "name"), f"also the name of targets[{named[target.name]}]")
                )
            elif target.name:
                named[target.name] = index
        listed: dict[str, int] = {}
        for index, target in enumerate(targets):
            for position, gateway in enumerate(target.gateways):
                first = listed.setdefault(gateway, index)
                if first != index:
                    problems.append(
                        (
                            (index, "gateways", position),
                            f"{gateway} is also listed by targets[{first}]",
                        )
                    )
        _raise_problems(problems)
        return tuple(
            _with_default_name(index, target, named) for index, target in enumerate(targets)
        )

    @model_validator(mode="after")
    def _needs_targets(self) -> Config:
        if not self.targets and not self.admin.enabled:
            _raise_problems(
                [
                    (
                        ("targets",),
                        "at least one target is needed (unless only the admin API is enabled)",
                    )
                ]
            )
        return self

    def interval_for(self, target: Target) -> float:
        """The target's configured poll interval in seconds (its own, else `poll.interval`)."""
        return target.interval if target.interval is not None else self.poll.interval

    @property
    def regions(self) -> frozenset[str]:
        """Every region some target covers."""
        return frozenset(target.region_id for target in self.targets)

    def account_of(self, profile: str) -> str:
        """The account whose rate budgets the profile's calls take (see
        `_Profile.account_id`): its `account_id`, the account of its `role_arn`, or
        `profile:<name>`."""
        settings = self.credentials[profile]
        if settings.account_id:
            return settings.account_id
        role_arn = getattr(settings, "role_arn", None)
        if role_arn:
            return str(role_arn).split(":")[3]
        return f"profile:{profile}"


def _base_profile_problem(
    profiles: Mapping[str, CredentialsProfile], name: str, base: str
) -> str | None:
    """What is wrong with the chain of `base_profile`s starting at profile `name`, if anything."""
    seen = [name]
    while base not in seen:
        profile = profiles.get(base)
        if profile is None:
            return f"no credentials profile named {base!r}"
        if not isinstance(profile, RamRoleArnProfile) or profile.base_profile is None:
            return None
        seen.append(base)
        base = profile.base_profile
    return "profiles must not assume roles in a loop: " + " -> ".join([*seen, base])


def _with_default_name(index: int, target: Target, taken: dict[str, int]) -> Target:
    """`target`, named `<profile>/<region_id>` (`#2`, `#3`... if taken) unless it has a
    name; `taken` maps the names given so far to their targets' indexes."""
    if target.name:
        return target
    base = name = f"{target.credentials}/{target.region_id}"
    suffix = 1
    while name in taken:
        suffix += 1
        name = f"{base}#{suffix}"
    taken[name] = index
    return target.model_copy(update={"name": name})


def _raise_problems(problems: Sequence[tuple[Loc, str]]) -> None:
    """Report several problems from one validator, each at its own path below the
    validator's (see `_translate`); pydantic alone would report one message at one path."""
    if problems:
        summary = "; ".join(f"{_format_path(loc)}: {message}" for loc, message in problems)
        raise PydanticCustomError(
            "config_problems", "{summary}", {"summary": summary, "problems": list(problems)}
        )


# --- error paths ------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _format_path(loc: Iterable[PathPart]) -> str:
    """`targets[1].gateways[0]`; map keys that are not plain words are quoted."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _unwrap(annotation: Any) -> tuple[Any, str | None]:
    """The type under `Annotated` and `X | None`, and the discriminator of a tagged union."""
    discriminator = None
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *metadata = typing.get_args(annotation)
            for item in metadata:
                if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
                    discriminator = item.discriminator
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, discriminator


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tagged_member(annotation: Any, discriminator: str, tag: object) -> Any:
    for member in typing.get_args(annotation):
        if tag in typing.get_args(member.model_fields[discriminator].annotation):
            return member
    return None


def _child(annotation: Any, part: PathPart, data: object = None) -> tuple[Any, bool]:
    """The annotation found at `part` below `annotation`, and whether `part` is a step of
    the path users see: pydantic puts a tagged union's tag in `loc`, users never wrote it."""
    annotation, discriminator = _unwrap(annotation)
    if discriminator is not None:
        member = _tagged_member(annotation, discriminator, part)
        if member is not None:
            return member, False
        tag = data.get(discriminator) if isinstance(data, Mapping) else None
        annotation = _tagged_member(annotation, discriminator, tag)
    if _is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return (field.annotation if field else None), True
    origin = typing.get_origin(annotation)
    if origin is dict:
        return typing.get_args(annotation)[1], True
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], True
    return None, True


def _field_names(annotation: Any) -> list[str]:
    annotation, discriminator = _unwrap(annotation)
    members = typing.get_args(annotation) if discriminator else (annotation,)
    return [name for member in members if _is_model(member) for name in member.model_fields]


def _translate(error: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(path, message)` pairs for one pydantic error, from its `loc` and `msg`, never
    from its input."""
    kind, ctx = error["type"], error.get("ctx") or {}
    loc: Loc = tuple(part for part in error["loc"] if part != "[key]")
    if kind == "config_problems":
        return [
            (path, message)
            for sub_loc, sub_message in ctx["problems"]
            for path, message in _translate(
                {"type": "custom", "loc": loc + tuple(sub_loc), "msg": sub_message}
            )
        ]
    annotation: Any = Config
    parent: Any = None
    shown: list[PathPart] = []
    for part in loc:
        parent = annotation
        annotation, visible = _child(annotation, part)
        if visible:
            shown.append(part)
    message = error["msg"]
    if kind == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), _field_names(parent), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind == "missing":
        message = "missing required key"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = ctx["discriminator"].strip("'")
        shown.append(discriminator)
        expected = ctx.get("expected_tags") or ", ".join(
            repr(tag) for tag in _tags(annotation, discriminator)
        )
        message = (
            f"must be one of {expected}"
            if kind == "union_tag_invalid"
            else f"missing required key (one of {expected})"
        )
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping"
    elif kind in ("list_type", "tuple_type"):
        message = "expected a list"
    return [(_format_path(shown), message)]


def _tags(annotation: Any, discriminator: str) -> list[object]:
    union, _ = _unwrap(annotation)
    return [
        tag
        for member in typing.get_args(union)
        for tag in typing.get_args(member.model_fields[discriminator].annotation)
    ]


# --- YAML -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EnvRef:
    """`!env NAME`, read once the document is complete (so errors can name the key)."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class _FileRef:
    """`!file PATH`, read once the document is complete."""

    path: str
    line: int


class _Loader(yaml.SafeLoader):
    """Safe YAML with `!env` and `!file`, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):  # `!!set 0`: PyYAML names the problem
            return super().construct_mapping(node, deep=deep)
        seen: set[object] = set()
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _tag_constructor(
    make: Callable[[str, int], object], needs: str
) -> Callable[[yaml.SafeLoader, yaml.Node], object]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.tag} needs {needs}", node.start_mark
            )
        return make(str(node.value).strip(), node.start_mark.line + 1)

    return construct


_Loader.add_constructor("!env", _tag_constructor(_EnvRef, "the name of an environment variable"))
_Loader.add_constructor("!file", _tag_constructor(_FileRef, "a file path"))


def _yaml_problem(source: str, error: yaml.YAMLError) -> str:
    # str(error) would quote the offending line, which may hold a secret.
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        text = f"{source}:{mark.line + 1}:{mark.column + 1}: {error.problem}"
        if error.context and error.context_mark is not None:
            text += f" ({error.context} at line {error.context_mark.line + 1})"
        return text
    if isinstance(error, yaml.reader.ReaderError):
        return f"{source}: not readable as text at position {error.position}: {error.reason}"
    return f"{source}: not valid YAML"


# --- loading ----------------------------------------------------------------------------


def _norm(key: str) -> str:
    return key.lower().replace("-", "_")


class _Overrides:
    """Environment overrides applied to the parsed document; remembers which variable set
    which path, so errors can name it."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.failed: set[str] = set()
        self.sources: dict[str, str] = {}

    def apply(self, data: dict[str, Any], environ: Mapping[str, str]) -> None:
        names = [
            name
            for name in environ
            if name.startswith(ENV_PREFIX) and "__" in name[len(ENV_PREFIX) :]
        ]
        # Shorter paths first: `TARGETS__0` (a whole target) before `TARGETS__0__INTERVAL`.
        for name in sorted(names, key=lambda name: (name.count("__"), name)):
            steps = name[len(ENV_PREFIX) :].split("__")
            if not all(steps):
                self.problems.append(("", f"{name}: empty step in the key path"))
                continue
            self._apply_one(data, name, steps, environ[name])

    def _apply_one(self, data: dict[str, Any], name: str, steps: list[str], value: str) -> None:
        node: Any = data
        annotation: Any = Config
        path: list[PathPart] = []
        for position, step in enumerate(steps):
            last = position == len(steps) - 1
            unwrapped, discriminator = _unwrap(annotation)
            key: PathPart
            if isinstance(node, list):
                if not step.isdigit() or int(step) >= len(node):
                    where = _format_path(path)
                    self.problems.append((where, f"{name}: no item {step} in this list"))
                    return
                key = int(step)
            elif isinstance(node, dict):
                if _is_model(unwrapped) or discriminator:
                    fields = {_norm(field): field for field in _field_names(annotation)}
                    key = fields.get(_norm(step), step.lower())
                else:
                    key = next((k for k in node if _norm(str(k)) == _norm(step)), step)
            else:
                self.problems.append(
                    (_format_path(path), f"{name}: not a section, cannot hold keys")
                )
                return
            annotation, _ = _child(annotation, key, node)
            path.append(key)
            if last:
                node[key] = self._value(name, value, annotation, path)
                self.sources[_format_path(path)] = name
            else:
                if isinstance(node, dict) and key not in node:
                    sequence = typing.get_origin(_unwrap(annotation)[0]) in (list, tuple)
                    node[key] = [] if sequence else {}
                node = node[key]

    def _value(self, name: str, value: str, annotation: Any, path: list[PathPart]) -> object:
        unwrapped, discriminator = _unwrap(annotation)
        container = (
            _is_model(unwrapped)
            or discriminator is not None
            or typing.get_origin(unwrapped) in (dict, list, tuple)
        )
        if not container:
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            where = _format_path(path)
            self.problems.append((where, f"{name}: a list or mapping is given as JSON"))
            self.failed.add(where)
            return None

    def source_of(self, path: str) -> str | None:
        """The variable that set `path` or one of its sections, if any did."""
        for prefix, name in self.sources.items():
            if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
                return name
        return None


def _resolve_refs(
    node: Any,
    loc: list[PathPart],
    environ: Mapping[str, str],
    base_dir: Path,
    problems: list[tuple[str, str]],
    failed: set[str],
) -> Any:
    """`node` with `!env`/`!file` values read; a value that cannot be read is reported and
    left in place (so that validation can go on with the rest)."""
    if isinstance(node, dict):
        return {
            key: _resolve_refs(value, [*loc, key], environ, base_dir, problems, failed)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            _resolve_refs(value, [*loc, index], environ, base_dir, problems, failed)
            for index, value in enumerate(node)
        ]
    if isinstance(node, _EnvRef):
        if node.name in environ:
            return environ[node.name]
        problem = f"environment variable {node.name} is not set (!env, line {node.line})"
    elif isinstance(node, _FileRef):
        path = Path(node.path)
        try:
            path = path.expanduser()
            path = path if path.is_absolute() else base_dir / path
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, ValueError, RuntimeError) as error:
            # ValueError: not UTF-8, or a NUL in the path; RuntimeError: `~nosuchuser/`
            if isinstance(error, RuntimeError):
                reason = "no such home directory"
            elif isinstance(error, OSError):
                reason = error.strerror or "cannot read"
            elif isinstance(error, UnicodeDecodeError):
                reason = "not UTF-8 text"
            else:
                reason = "not a file path"
            problem = f"cannot read {path}: {reason} (!file, line {node.line})"
    else:
        return node
    where = _format_path(loc)
    problems.append((where, problem))
    failed.add(where)
    return node


MAX_EXPANDED_VALUES = 1_000_000
"""A bound on the values a config file may expand to: YAML aliases of aliases (a "billion
laughs") would otherwise make a short file cost minutes and gigabytes to validate."""


def expanded_size(node: object, limit: int) -> int:
    """How many values `node` holds once its shared parts (YAML aliases) are repeated;
    counting stops soon after `limit`. Each distinct object is measured once."""
    sizes: dict[int, int] = {}

    def size(value: object) -> int:
        known = sizes.get(id(value))
        if known is not None:
            return known
        total = 1
        children = (
            [c for pair in value.items() for c in pair]
            if isinstance(value, dict)
            else value
            if isinstance(value, list)
            else ()
        )
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(value)] = total
        return total

    return size(node)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override, resolve and validate the config file; `environ` (default
    `os.environ`) supplies overrides and `!env` values. Raises `ConfigError`."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            [("", f"{path}: cannot read the config file: {error.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([("", f"{path}: the config file is not UTF-8 text")]) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ConfigError([("", _yaml_problem(str(path), error))]) from None
    except RecursionError:
        raise ConfigError([("", f"{path}: not valid YAML (nested too deeply)")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"{path}: the config file must hold a mapping of sections")])
    if expanded_size(data, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
        raise ConfigError(
            [
                (
                    "",
                    f"{path}: the config expands to more than {MAX_EXPANDED_VALUES:,} values "
                    "(YAML aliases repeating aliases?)",
                )
            ]
        )

    overrides = _Overrides()
    overrides.apply(data, environ)
    problems = list(overrides.problems)
    failed = set(overrides.failed)
    data = _resolve_refs(data, [], environ, path.parent, problems, failed)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as error:
        for item in error.errors(include_url=False, include_input=False):
            for where, message in _translate(item):
                if where not in failed:
                    source = overrides.source_of(where)
                    problems.append((where, f"{message} (from {source})" if source else message))
    else:
        if not problems:
            return config
    raise ConfigError(problems)


def check_config(path: str | Path, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """`--check-config`: the exit code and what to print (every problem, or a summary
    that names profiles and their sources but never a secret)."""
    try:
        config = load_config(path, environ)
    except ConfigError as error:
        lines = [f"{path}: invalid configuration"]
        lines += [f"  {line}" for line in str(error).splitlines()]
        return 1, "\n".join(lines)
    return 0, _summary(path, config)


def _summary(path: str | Path, config: Config) -> str:
    poll = config.poll
    stale = format_duration(poll.stale_after) if poll.stale_after else "3 x effective interval"
    lines = [
        f"{path}: OK",
        "  credentials: "
        + ", ".join(f"{name} ({profile.source})" for name, profile in config.credentials.items()),
        f"  poll: every {format_duration(poll.interval)}, stale after {stale}",
        f"  targets: {len(config.targets)}",
    ]
    for target in config.targets:
        details = [
            f"region {target.region_id}",
            f"profile {target.credentials}",
            f"every {format_duration(config.interval_for(target))}",
            f"gateways listed: {len(target.gateways)}",
        ]
        if target.discover is not None:
            details.append(f"discovery every {format_duration(target.discover.interval)}")
        lines.append(f"    {target.name}: " + ", ".join(details))
    diagnose = config.diagnose
    lines.append(
        f"  diagnose: every {format_duration(diagnose.interval)}"
        if diagnose.enabled
        else "  diagnose: off"
    )
    lines.append(f"  admin: {'on' if config.admin.enabled else 'off'}")
    return "\n".join(lines)
