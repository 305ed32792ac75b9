"""GetVpnGatewayDiagnoseResult responses → typed `Diagnosis` values.

This is the edge where the API's JSON becomes typed data; past it nothing handles raw dicts.
Two levels of trust:

- The **envelope** (gateway, connection and diagnosis IDs, counts, the item list) is what
  every metric of a gateway hangs on. When it is unusable, `parse_diagnosis` raises
  `ResponseShapeError` and the poll fails as an unreadable response.
- Each item's **description** is a JSON string whose shape the API documents loosely or not
  at all. `parse_description` never raises: it returns a reading with every value it could
  trust and, when something was wrong, an error message for the caller to log (with gateway,
  item and RequestId) and count in `aliyun_vpn_description_parse_errors_total`. The item's
  level is exported either way.

Numbers are never guessed: a value that is missing, not a number, negative, NaN, infinite
or out of range becomes None (and an error), never a wrong gauge. Numbers may arrive as
JSON numbers or as decimal strings (`"85"`, `"12.5"`); keys the exporter does not know are
ignored. A description may be JSON, JSON inside a JSON string (decoded again), the API
docs' sample form (an object with backslash-escaped quotes but no outer quotes), or already
a dict.

Rules for the shapes FACTS marks unknown (these decide what may become a number):

- `VcoConfigConsistency`: `vcoDiffConf` and `vcoLackConf` are *counted* when they are a
  JSON array or object (directly or as JSON text: its length), null or an empty string
  (0). Anything else, free text included (it might name a setting as well as say "none"),
  is uncountable. `vcoLackConf` may also be a boolean, as the API page's wording ("The
  system cannot obtain the configuration of the peer") suggests: `false` counts 0
  (nothing lacking), `true` means the peer's configuration could not be obtained, so
  consistency is unknown (`peer_available` False, `consistent` and `diff_entries` None).
  Otherwise `consistent` is False when either counts above 0, True when both are present
  and count 0, else None. `diff_entries` is the count of `vcoDiffConf`, else None.
  A description that is not a JSON object is an error; an empty one is not.
- `RouteEntryConflict`: `conflicts` is the length of a top-level JSON array, or of the one
  array-valued key whose name contains "conflict" or "route" (case-insensitive, e.g.
  `conflictRoutes`); with none or several such keys it is None. Any JSON is accepted
  without error (the docs' own sample pairs this item with a probe-shaped payload); only
  text that is not JSON is an error, as for every item (a JSON string is taken for one more
  layer of encoding, so a JSON string of plain text is not JSON either).

Unknown items get an `UnknownReading` and no error: their level is still exported.

**Drift** (`exporter.model.drift`) is what was read despite an unexpected form: an unknown
item, level or key, a number or boolean written as text, a doubly encoded, escaped or
not-a-string description, an empty one where that is allowed. Each item carries its drift,
by kind with the key names involved (never values). A value the parser had to give up on is
a problem (a parse error) and never drift as well: a description that cannot be decoded
has no drift, a numeric string that is negative or out of range is only a problem.

The parser never logs; it runs for every gateway on every cycle, so it sticks to `json.loads`
and cheap checks.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exporter.model.diagnosis import (
    CONSISTENCY_ITEM,
    PROBE_ITEMS,
    QUOTA_ITEMS,
    ROUTE_CONFLICT_ITEM,
    ConsistencyReading,
    DiagnoseItem,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
    Reading,
    RouteConflictReading,
    UnknownReading,
)
from exporter.model.drift import (
    DOCUMENTED_KEYS,
    ROUTE_CONFLICT_SAMPLE_KEYS,
    Drift,
    DriftKind,
)

__all__ = [
    "ItemReading",
    "ResponseShapeError",
    "parse_description",
    "parse_diagnosis",
    "read_description",
]

_PRIVATE_PROBE = "VcoPrivateConnectivity"
_MAX_DECODINGS = 4
"""JSON decodings tried on one description: the API nests JSON in JSON strings at least once."""
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_LEVELS = {level.value: level for level in Level}
_UNKNOWN = UnknownReading()
_SHOWN_CHARS = 40
_MAX_DRIFT_KEYS = 20


class ResponseShapeError(ValueError):
    """A GetVpnGatewayDiagnoseResult response whose envelope cannot be read.

    Raised for what no metric can do without: the response is not an object, a required ID
    is missing, the counts or the item list have the wrong type, an item has no name, or
    an item appears twice (its level would be ambiguous). `request_id` is the response's
    RequestId when it had one, for the log line.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_diagnosis(payload: Mapping[str, Any]) -> Diagnosis:
    """Read a decoded GetVpnGatewayDiagnoseResult response.

    Required: `VpnGatewayId`, `ResourceInstanceId` and `DiagnoseId` (non-empty strings: the
    series' labels and the diagnosis' identity), `FinishedCount` and `TotalCount`
    (non-negative integers, also as digit strings: they decide whether the diagnosis is
    still running). `DiagnoseResult` may be missing or null (no item finished yet) but
    otherwise must be a list of objects, each with a unique `DiagnoseName`. Times that are
    missing or unreadable are None; `RequestId` is optional.
    """
    if not isinstance(payload, Mapping):
        raise ResponseShapeError(f"response is a {_kind(payload)}, not a JSON object")
    request_id = payload.get("RequestId")
    if not isinstance(request_id, str):
        request_id = ""

    def shape_error(message: str) -> ResponseShapeError:
        return ResponseShapeError(message, request_id=request_id or None)

    def required_id(key: str) -> str:
        value = payload.get(key)
        if not isinstance(value, str) or not value.strip():
            raise shape_error(f"{key} is {_describe_missing(payload, key)}, not a non-empty string")
        return value

    def required_count(key: str) -> int:
        count = _count(payload.get(key))
        if count is None:
            raise shape_error(f"{key} is {_describe_missing(payload, key)}, not a count")
        return count

    vpn_gateway_id = required_id("VpnGatewayId")
    connection_id = required_id("ResourceInstanceId")
    diagnose_id = required_id("DiagnoseId")
    finished_count = required_count("FinishedCount")
    total_count = required_count("TotalCount")

    entries = payload.get("DiagnoseResult")
    if entries is None:
        entries = []
    elif not isinstance(entries, list):
        raise shape_error(f"DiagnoseResult is a {_kind(entries)}, not a list")
    items: list[DiagnoseItem] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise shape_error(f"DiagnoseResult[{index}] is a {_kind(entry)}, not an object")
        name = entry.get("DiagnoseName")
        if not isinstance(name, str) or not name:
            raise shape_error(f"DiagnoseResult[{index}] has no DiagnoseName")
        if name in seen:
            raise shape_error(f"DiagnoseResult lists {name} more than once")
        seen.add(name)
        name = sys.intern(name)  # a few item names, shared by every gateway's records
        read = read_description(name, entry.get("DiagnoseResultDescription"))
        raw_level = entry.get("DiagnoseResultLevel")
        level = _level(raw_level)
        drift = read.drift
        if level is None and raw_level is not None:
            drift = tuple(sorted({*drift, Drift(DriftKind.UNKNOWN_LEVEL)}))
        items.append(DiagnoseItem(name, level, read.reading, read.error, drift))

    return Diagnosis(
        vpn_gateway_id=vpn_gateway_id,
        diagnose_id=diagnose_id,
        connection_id=connection_id,
        begin_time=_epoch_seconds(payload.get("BeginTime")),
        finish_time=_epoch_seconds(payload.get("FinishTime")),
        finished_count=finished_count,
        total_count=total_count,
        items=tuple(items),
        request_id=request_id,
    )


@dataclass(frozen=True, slots=True)
class ItemReading:
    """What the parser read from one description: the reading, the parse error (None: none)
    and the drift (what was read despite an unexpected form, sorted)."""

    reading: Reading
    error: str | None
    drift: tuple[Drift, ...]


def parse_description(item_name: str, description: object) -> tuple[Reading, str | None]:
    """Read one item's `DiagnoseResultDescription`.

    Returns the reading and None, or the reading kept so far and a message saying what was
    wrong (several problems are joined by "; "). Unknown items and descriptions that are not
    JSON give an `UnknownReading`. Never raises.
    """
    read = read_description(item_name, description)
    return read.reading, read.error


def read_description(item_name: str, description: object) -> ItemReading:
    """`parse_description` with the drift it met. A description that could not be decoded
    at all has a parse error and no drift: one event is never both."""
    reader = _READERS.get(item_name)
    if reader is None:
        return ItemReading(_UNKNOWN, None, (Drift(DriftKind.UNKNOWN_ITEM),))
    notes = _Notes()
    try:
        value = _decode(description, notes)
    except _Unreadable as exc:
        return ItemReading(_UNKNOWN, str(exc), ())
    reading = reader(item_name, value, notes)
    if value is None and not notes.problems:
        notes.drifted(DriftKind.EMPTY)
    return ItemReading(reading, "; ".join(notes.problems) or None, notes.drift())


class _Notes:
    """Problems (parse errors) and drift met while reading one description."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._drift: dict[DriftKind, set[str]] = {}

    def append(self, problem: str) -> None:
        self.problems.append(problem)

    def drifted(self, kind: DriftKind, key: str | None = None) -> None:
        keys = self._drift.setdefault(kind, set())
        if key is not None:
            keys.add(key)

    def unknown_keys(self, fields: Mapping[Any, Any], known: frozenset[str]) -> None:
        for key in fields:
            if key not in known:
                self.drifted(DriftKind.UNKNOWN_KEY, str(key))

    def drift(self) -> tuple[Drift, ...]:
        """The drift met, each kind once with at most `_MAX_DRIFT_KEYS` key names (cut to
        `_SHOWN_CHARS`): a payload with thousands of keys must not make a huge shape."""
        return tuple(
            sorted(
                Drift(kind, tuple(name[:_SHOWN_CHARS] for name in sorted(keys)[:_MAX_DRIFT_KEYS]))
                for kind, keys in self._drift.items()
            )
        )


class _Unreadable(Exception):
    """A description (or part of one) that is not JSON."""


def _decode(description: object, notes: _Notes | None = None) -> object:
    """Undo the description's JSON encodings; null, an empty or blank string give None.

    With `notes`, the forms met are noted as drift: not a string at all, more than one JSON
    encoding, the API page's escaped-quotes sample form.
    """
    value = description
    if notes is not None and isinstance(value, Mapping | list):
        notes.drifted(DriftKind.NOT_A_STRING)
    for _ in range(_MAX_DECODINGS):
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return None
        try:
            value = json.loads(text)
            if notes is not None and isinstance(value, str):
                notes.drifted(DriftKind.DOUBLE_ENCODED)
        except RecursionError:
            raise _Unreadable("description is nested too deeply") from None
        except ValueError as exc:
            # The docs' sample: an object whose quotes are escaped, without the outer quotes
            # that would make it a JSON string. Decode it as the inside of one.
            if '\\"' not in text:
                raise _Unreadable(f"description is not JSON ({exc})") from None
            try:
                value = json.loads(f'"{text}"')
            except (ValueError, RecursionError):
                raise _Unreadable(f"description is not JSON ({exc})") from None
            if notes is not None:
                notes.drifted(DriftKind.ESCAPED_JSON)
    if isinstance(value, str):
        raise _Unreadable(f"description is still a string after {_MAX_DECODINGS} JSON decodings")
    return value


def _read_quota(item: str, value: object, notes: _Notes) -> Reading:
    fields = _expect_object(value, notes)
    if fields is None:
        return _UNKNOWN
    notes.unknown_keys(fields, DOCUMENTED_KEYS[item])
    raw_name = fields.get("quotaName")
    if isinstance(raw_name, str) and raw_name.strip():
        quota_name = sys.intern(raw_name.strip())
    else:  # missing or blank: the item names the quota well enough, so no problem
        quota_name = item
        if raw_name is not None and not isinstance(raw_name, str):
            notes.append(f"quotaName: {_show(raw_name)} is not a string")
    return QuotaReading(
        quota_name=quota_name,
        used=_number(fields, "used", notes, low=0.0),
        limit=_number(fields, "quantity", notes, low=0.0),
    )


def _read_probe(item: str, value: object, notes: _Notes) -> Reading:
    fields = _expect_object(value, notes)
    if fields is None:
        return _UNKNOWN
    notes.unknown_keys(fields, DOCUMENTED_KEYS[item])
    # The public probe runs from the cloud's side and has no source address; a srcIp there
    # is ignored so that the series' labels stay stable.
    source_ip = _address(fields, "srcIp", notes) if item == _PRIVATE_PROBE else ""
    target_ip = _address(fields, "targetIp", notes)

    rtt_ms = _number(fields, "rtt", notes)
    # A negative rtt is the API's `-1`: no reply, which is a finding, not a parse problem.
    no_reply = rtt_ms is not None and rtt_ms < 0
    rtt_seconds = rtt_ms / 1000.0 if rtt_ms is not None and rtt_ms >= 0 else None

    loss_percent = _number(fields, "lossRate", notes, low=0.0, high=100.0)
    loss_ratio = loss_percent / 100.0 if loss_percent is not None else None
    return ProbeReading(source_ip, target_ip, rtt_seconds, loss_ratio, no_reply)


def _read_consistency(item: str, value: object, notes: _Notes) -> Reading:
    if value is None:
        return ConsistencyReading(consistent=None, diff_entries=None)
    fields = _expect_object(value, notes)
    if fields is None:
        return _UNKNOWN
    notes.unknown_keys(fields, DOCUMENTED_KEYS[item])
    diff = _entries(fields["vcoDiffConf"]) if "vcoDiffConf" in fields else None
    raw_lack = _boolean_text(fields.get("vcoLackConf"))
    if isinstance(raw_lack, bool) and not isinstance(fields.get("vcoLackConf"), bool):
        notes.drifted(DriftKind.BOOLEAN_AS_STRING, "vcoLackConf")
    if raw_lack is True:
        return ConsistencyReading(consistent=None, diff_entries=None, peer_available=False)
    lack = 0 if raw_lack is False else _entries(raw_lack) if "vcoLackConf" in fields else None
    consistent: bool | None = None
    if (diff or 0) > 0 or (lack or 0) > 0:
        consistent = False
    elif diff == 0 and lack == 0:
        consistent = True
    peer_available = True if lack is not None else None
    return ConsistencyReading(consistent, diff, peer_available)


def _read_route_conflict(item: str, value: object, notes: _Notes) -> Reading:
    if isinstance(value, list):
        return RouteConflictReading(conflicts=len(value))
    if isinstance(value, Mapping):
        counts = []
        for key, nested in value.items():
            counted = isinstance(key, str) and ("conflict" in key.lower() or "route" in key.lower())
            if not counted:
                if key not in ROUTE_CONFLICT_SAMPLE_KEYS:
                    notes.drifted(DriftKind.UNKNOWN_KEY, str(key))
            elif (count := _list_length(nested)) is not None:
                counts.append(count)
        if len(counts) == 1:
            return RouteConflictReading(conflicts=counts[0])
    return RouteConflictReading(conflicts=None)


_Reader = Callable[[str, object, _Notes], Reading]
_READERS: dict[str, _Reader] = {
    **dict.fromkeys(QUOTA_ITEMS, _read_quota),
    **dict.fromkeys(PROBE_ITEMS, _read_probe),
    CONSISTENCY_ITEM: _read_consistency,
    ROUTE_CONFLICT_ITEM: _read_route_conflict,
}


def _expect_object(value: object, notes: _Notes) -> Mapping[Any, Any] | None:
    if isinstance(value, Mapping):
        return value
    if value is None:
        notes.append("description is empty")
    else:
        notes.append(f"description is a JSON {_kind(value)}, not an object")
    return None


def _number(
    fields: Mapping[Any, Any],
    key: str,
    notes: _Notes,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """A finite number (JSON number or decimal string) within `low`..`high`; else None and
    a problem. A decimal string that gives a usable number is drift, not a problem."""
    if key not in fields:
        notes.append(f"{key}: missing")
        return None
    raw = fields[key]
    number: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except OverflowError:  # an integer too large for a float
            number = None
    elif isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
        number = float(raw)
    if number is None or not math.isfinite(number):
        notes.append(f"{key}: {_show(raw)} is not a finite number")
        return None
    number += 0.0  # turns -0.0 into 0.0, which would otherwise be exported as "-0.0"
    if high is not None and low is not None and not low <= number <= high:
        notes.append(f"{key}: {number!r} is outside {low:g}..{high:g} %")
        return None
    if low is not None and number < low:
        notes.append(f"{key}: {number!r} is negative")
        return None
    if isinstance(raw, str):
        notes.drifted(DriftKind.NUMBER_AS_STRING, key)
    return number


def _address(fields: Mapping[Any, Any], key: str, notes: _Notes) -> str:
    raw = fields.get(key)
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if raw is None or isinstance(raw, str):
        notes.append(f"{key}: missing")
    else:
        notes.append(f"{key}: {_show(raw)} is not a string")
    return ""


def _entries(value: object) -> int | None:
    """How many entries a config-diff value holds, or None when it cannot be counted."""
    try:
        decoded = _decode(value)
    except _Unreadable:
        return None
    if decoded is None:
        return 0
    if isinstance(decoded, list | Mapping):
        return len(decoded)
    return None


def _boolean_text(value: object) -> object:
    """`value`, with the texts `true` and `false` (any case) read as booleans."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _list_length(value: object) -> int | None:
    """The length of a JSON array, given directly or as JSON text; else None."""
    if isinstance(value, str):
        try:
            value = _decode(value)
        except _Unreadable:
            return None
    return len(value) if isinstance(value, list) else None


def _count(value: object) -> int | None:
    """A non-negative integer from a JSON integer, an integral float or a digit string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        try:
            return int(value)
        except ValueError:  # more digits than Python converts
            return None
    return None


def _epoch_seconds(value: object) -> float | None:
    """An ISO 8601 date-time (the API's `YYYY-MM-DDThh:mm:ssZ`) as Unix seconds.

    Without a zone the time is taken as UTC, as the API documents. None for anything
    unreadable, for a date without a time, and for times at or before the epoch (zero-value
    sentinels such as `0001-01-01T00:00:00Z`, which must not become a negative gauge).
    """
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        seconds = parsed.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return seconds if seconds > 0 else None


def _level(value: object) -> Level | None:
    return _LEVELS.get(value.strip().lower()) if isinstance(value, str) else None


def _describe_missing(payload: Mapping[str, Any], key: str) -> str:
    return "missing" if key not in payload else _show(payload[key])


def _kind(value: object) -> str:
    """A JSON-ish type name for messages: never the value itself, which may be large."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: object) -> str:
    """A short rendering of a scalar for error messages; containers only by type."""
    if not (isinstance(value, str | int | float) or value is None):
        return f"a {_kind(value)}"
    try:
        text = repr(value) if isinstance(value, float) else json.dumps(value)
    except ValueError:  # an integer with more digits than Python converts to text
        return "a huge number"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
