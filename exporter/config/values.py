"""Value types of the configuration: durations, rates, IDs, CIDRs, secrets, endpoints,
files, and the error that carries every problem found."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, NamedTuple, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

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


def invalid(kind: str, message: str) -> PydanticCustomError:
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
        raise invalid("duration", _DURATION_HELP)
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _duration_from_units(text)
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        raise invalid("duration", _DURATION_HELP)
    return seconds


def _duration_from_units(text: str) -> float:
    total, position, last_rank = 0.0, 0, -1
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            raise invalid("duration", _DURATION_HELP)
        rank = _UNIT_ORDER.index(match[2])
        if rank <= last_rank:
            raise invalid("duration", "invalid duration: units must go from largest to smallest")
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position, last_rank = match.end(), rank
    if position == 0:
        raise invalid("duration", _DURATION_HELP)
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
        raise invalid("rate", _RATE_HELP)
    period = _RATE_UNITS.get(match[2])
    if period is None:
        try:
            period = parse_duration(match[2])
        except PydanticCustomError:
            raise invalid("rate", _RATE_HELP) from None
    return Rate(int(match[1]), period)


def _positive_rate(rate: Rate) -> Rate:
    if rate.calls <= 0 or rate.period <= 0:
        raise invalid("rate", "invalid rate: calls and period must be more than zero")
    return rate


RateLimit = Annotated[Rate, BeforeValidator(parse_rate), AfterValidator(_positive_rate)]
"""A call rate, written `96/min`, `2/s` or `600/60s`, read as `Rate(calls, period)`."""


def _matching(pattern: str, message: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise invalid("invalid_format", message)
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
        raise invalid("secret_empty", "must not be empty")
    return value


Secret = Annotated[SecretStr, AfterValidator(_non_empty_secret)]
"""A secret: hidden in `repr`, `str` and JSON dumps; typically given with `!env` or `!file`."""


def _check_endpoint(template: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields - {"region_id"}:
        raise invalid("endpoint", "the only placeholder an endpoint may hold is {region_id}")
    url = template.replace("{region_id}", "cn-hangzhou")
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(
            "endpoint", "not an endpoint: host[:port], optionally with http:// or https://"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise invalid("endpoint", "an endpoint is a scheme, host and port only")
    return template


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
"""A VPC API endpoint, optionally a template with `{region_id}` and a scheme."""


def _check_proxy(value: SecretStr) -> SecretStr:
    # The proxy URL may carry a password: the messages describe, never quote.
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise invalid("proxy", "not a proxy URL (http://, https:// or socks5:// and a host)")
    return value


ProxyUrl = Annotated[SecretStr, AfterValidator(_check_proxy)]


def _readable_file(value: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    path = value if value.is_absolute() or base_dir is None else Path(base_dir) / value
    if not path.is_file():
        raise invalid("file", "no such file")
    return path


ConfigFile = Annotated[Path, AfterValidator(_readable_file)]
"""An existing file; a relative path is relative to the config file."""


def _parse_cidr(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return ipaddress.IPv4Network(value.strip())
    except ipaddress.NetmaskValueError:
        raise invalid("cidr", "not an IPv4 CIDR (invalid prefix length)") from None
    except ValueError as error:
        if "has host bits set" in str(error):
            raise invalid("cidr", "not a network address: host bits are set") from None
        raise invalid("cidr", "not an IPv4 CIDR (like 10.0.0.0/8)") from None


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_parse_cidr)]
"""An IPv4 network in CIDR notation with no host bits set (`10.0.0.0/8`)."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(loc: Iterable[PathPart]) -> str:
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


def raise_problems(problems: Sequence[tuple[Loc, str]]) -> None:
    """Report several problems from one validator, each at its own path below the
    validator's (see `translate_error`); pydantic alone would report one message at one path."""
    if problems:
        summary = "; ".join(f"{format_path(loc)}: {message}" for loc, message in problems)
        raise PydanticCustomError(
            "config_problems", "{summary}", {"summary": summary, "problems": list(problems)}
        )


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
