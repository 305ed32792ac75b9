"""The state file: the latest-known data, kept across restarts and rollouts.

A restarted exporter would otherwise export nothing until its first cycle completes (over
an hour at 10,000 gateways under the published quota), and Alertmanager would resolve
every alert meanwhile. The fleet's records are saved periodically and at shutdown, with
their original timestamps, and restored at start before the first cycle (DESIGN
"Failure semantics").

The format is JSON, versioned (`FORMAT`, `VERSION`), compact (no indentation, values at
their defaults left out). It is written to a temporary file beside the target and moved
into place with `os.replace`, so a crash mid-write leaves the previous file whole. A file
larger than the configured bound is neither written nor read. A corrupt, foreign or
incompatible file is reported by `StateFileError`, which the caller logs and ignores.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exporter.exposition.records import (
    ConnectionDiagnosis,
    GatewayKey,
    GatewayRecord,
    PollResult,
)
from exporter.model.connection import Tunnel, VpnConnection
from exporter.model.diagnosis import (
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
from exporter.model.gateway import GatewayInfo

FORMAT = "aliyun-vpn-exporter-state"
VERSION = 1


class StateFileError(Exception):
    """The state file cannot be used (unreadable, too large, corrupt or incompatible)."""


@dataclass(frozen=True, slots=True)
class SavedTarget:
    """What a target knew besides its gateways' records."""

    region_id: str
    profile: str
    discovered: tuple[str, ...] = ()
    """Gateways its last successful discovery found (kept until the next one succeeds)."""
    effective_interval: float | None = None
    """The pace it achieved (so "data stale" thresholds hold from the first scrape)."""


@dataclass(frozen=True, slots=True)
class SavedState:
    """The content of a state file."""

    saved_at: float
    records: tuple[GatewayRecord, ...] = ()
    targets: Mapping[str, SavedTarget] = field(default_factory=dict)


# --- writing -----------------------------------------------------------------------------


def encode(state: SavedState) -> bytes:
    """The state file's bytes for `state`."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": state.saved_at,
        "targets": {name: _target(target) for name, target in state.targets.items()},
        "gateways": [_record(record) for record in state.records],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def save(path: Path, state: SavedState, max_size: int) -> int:
    """Write `state` to `path` atomically; return its size. Raises `StateFileError` when it
    would exceed `max_size` (the previous file stays) and `OSError` when it cannot be
    written."""
    data = encode(state)
    if len(data) > max_size:
        raise StateFileError(
            f"the state ({len(data)} bytes) exceeds state.max_size ({max_size} bytes): not saved"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


def _omit_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _target(target: SavedTarget) -> dict[str, Any]:
    return _omit_defaults(
        {
            "region_id": target.region_id,
            "profile": target.profile,
            "discovered": list(target.discovered) or None,
            "effective_interval": target.effective_interval,
        }
    )


def _record(record: GatewayRecord) -> dict[str, Any]:
    key = record.key
    return _omit_defaults(
        {
            "key": [key.target, key.region_id, key.vpn_gateway_id],
            "last_poll": _poll(record.last_poll) if record.last_poll else None,
            "last_success_at": record.last_success_at,
            "available": record.available,
            "found": None if record.found else False,
            "latest_connection": record.latest_connection,
            "connections": {
                cid: _connection_diagnosis(conn) for cid, conn in record.connections.items()
            }
            or None,
            "info": _info(record.info) if record.info else None,
            "vpn_connections": (
                None
                if record.vpn_connections is None
                else [_vpn_connection(c) for c in record.vpn_connections]
            ),
            "vpn_connections_at": record.vpn_connections_at,
        }
    )


def _poll(poll: PollResult) -> list[Any]:
    return [poll.success, poll.finished_at, poll.duration, poll.error_code, poll.error]


def _connection_diagnosis(conn: ConnectionDiagnosis) -> dict[str, Any]:
    latest = _diagnosis(conn.latest)
    return _omit_defaults(
        {
            # The finished diagnosis is most often the latest one: stored once.
            "finished": None
            if conn.finished is None
            else ("latest" if conn.finished == conn.latest else _diagnosis(conn.finished)),
            "latest": latest,
            "confirmed_at": conn.confirmed_at,
            "keep_until": conn.keep_until,
        }
    )


def _diagnosis(diagnosis: Diagnosis) -> dict[str, Any]:
    return _omit_defaults(
        {
            "gateway": diagnosis.vpn_gateway_id,
            "id": diagnosis.diagnose_id,
            "connection": diagnosis.connection_id,
            "begin": diagnosis.begin_time,
            "finish": diagnosis.finish_time,
            "finished": diagnosis.finished_count,
            "total": diagnosis.total_count,
            "items": [_item(item) for item in diagnosis.items],
            "request_id": diagnosis.request_id or None,
        }
    )


def _item(item: DiagnoseItem) -> list[Any]:
    encoded = [item.name, item.level.value if item.level else None, _reading(item.reading)]
    return encoded if item.parse_error is None else [*encoded, item.parse_error]


def _reading(reading: Reading) -> list[Any]:
    if isinstance(reading, QuotaReading):
        return ["quota", reading.quota_name, reading.used, reading.limit]
    if isinstance(reading, ProbeReading):
        return [
            "probe",
            reading.source_ip,
            reading.target_ip,
            reading.rtt_seconds,
            reading.loss_ratio,
            reading.no_reply,
        ]
    if isinstance(reading, ConsistencyReading):
        return ["consistency", reading.consistent, reading.diff_entries, reading.peer_available]
    if isinstance(reading, RouteConflictReading):
        return ["conflicts", reading.conflicts]
    return ["unknown"]


def _info(info: GatewayInfo) -> list[Any]:
    return [info.name, info.vpc_id, info.spec, info.status, dict(info.tags)]


def _vpn_connection(connection: VpnConnection) -> list[Any]:
    return [
        connection.vpn_connection_id,
        connection.vpn_gateway_id,
        connection.name,
        connection.state,
        connection.status,
        connection.attach_type,
        connection.transit_router_id,
        connection.bgp_status,
        connection.health_check_status,
        [[t.tunnel_id, t.role, t.state, t.status] for t in connection.tunnels],
    ]


# --- reading -----------------------------------------------------------------------------


def load(path: Path, max_size: int) -> SavedState:
    """Read the state file at `path`. Raises `FileNotFoundError` when there is none and
    `StateFileError` when it cannot be used."""
    try:
        size = path.stat().st_size
        if size > max_size:
            raise StateFileError(f"{size} bytes, more than state.max_size ({max_size} bytes)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise StateFileError(f"cannot read it: {error}") from error
    return decode(data)


def decode(data: bytes) -> SavedState:
    """The state in a state file's bytes; raises `StateFileError`."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise StateFileError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateFileError("not an aliyun-vpn-exporter state file")
    if document.get("version") != VERSION:
        raise StateFileError(
            f"format version {document.get('version')!r}, this exporter reads {VERSION}"
        )
    try:
        return SavedState(
            saved_at=float(document["saved_at"]),
            records=tuple(_read_record(r) for r in document.get("gateways", ())),
            targets={
                str(name): _read_target(target)
                for name, target in dict(document.get("targets", {})).items()
            },
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise StateFileError(f"corrupt: {type(error).__name__}: {error}") from error


def _read_target(data: Mapping[str, Any]) -> SavedTarget:
    effective = data.get("effective_interval")
    return SavedTarget(
        region_id=str(data["region_id"]),
        profile=str(data["profile"]),
        discovered=tuple(str(g) for g in data.get("discovered", ())),
        effective_interval=None if effective is None else float(effective),
    )


def _read_record(data: Mapping[str, Any]) -> GatewayRecord:
    target, region_id, gateway_id = (str(part) for part in data["key"])
    poll = data.get("last_poll")
    listed = data.get("vpn_connections")
    info = data.get("info")
    return GatewayRecord(
        key=GatewayKey(target, region_id, gateway_id),
        last_poll=None if poll is None else _read_poll(poll),
        last_success_at=_optional_float(data.get("last_success_at")),
        available=_optional_bool(data.get("available")),
        found=bool(data.get("found", True)),
        latest_connection=data.get("latest_connection"),
        connections=MappingProxyType(
            {
                str(cid): _read_connection_diagnosis(conn)
                for cid, conn in dict(data.get("connections", {})).items()
            }
        ),
        info=None if info is None else _read_info(info),
        vpn_connections=None if listed is None else tuple(_read_vpn_connection(c) for c in listed),
        vpn_connections_at=_optional_float(data.get("vpn_connections_at")),
    )


def _read_poll(data: list[Any]) -> PollResult:
    success, finished_at, duration, code, error = data
    return PollResult(bool(success), float(finished_at), float(duration), code, error)


def _read_connection_diagnosis(data: Mapping[str, Any]) -> ConnectionDiagnosis:
    latest = _read_diagnosis(data["latest"])
    finished = data.get("finished")
    return ConnectionDiagnosis(
        finished=(
            None
            if finished is None
            else latest
            if finished == "latest"
            else _read_diagnosis(finished)
        ),
        latest=latest,
        confirmed_at=float(data["confirmed_at"]),
        keep_until=_optional_float(data.get("keep_until")),
    )


def _read_diagnosis(data: Mapping[str, Any]) -> Diagnosis:
    return Diagnosis(
        vpn_gateway_id=str(data["gateway"]),
        diagnose_id=str(data["id"]),
        connection_id=str(data["connection"]),
        begin_time=_optional_float(data.get("begin")),
        finish_time=_optional_float(data.get("finish")),
        finished_count=int(data["finished"]),
        total_count=int(data["total"]),
        items=tuple(_read_item(item) for item in data.get("items", ())),
        request_id=str(data.get("request_id", "")),
    )


def _read_item(data: list[Any]) -> DiagnoseItem:
    name, level, reading, *parse_error = data
    return DiagnoseItem(
        str(name),
        None if level is None else Level(level),
        _read_reading(reading),
        str(parse_error[0]) if parse_error else None,
    )


def _read_reading(data: list[Any]) -> Reading:
    kind, *values = data
    if kind == "quota":
        name, used, limit = values
        return QuotaReading(str(name), _optional_float(used), _optional_float(limit))
    if kind == "probe":
        source, target, rtt, loss, no_reply = values
        return ProbeReading(
            str(source), str(target), _optional_float(rtt), _optional_float(loss), bool(no_reply)
        )
    if kind == "consistency":
        consistent, diff, peer = values
        return ConsistencyReading(
            _optional_bool(consistent), None if diff is None else int(diff), _optional_bool(peer)
        )
    if kind == "conflicts":
        (conflicts,) = values
        return RouteConflictReading(None if conflicts is None else int(conflicts))
    if kind == "unknown":
        return UnknownReading()
    raise ValueError(f"unknown reading kind {kind!r}")


def _read_info(data: list[Any]) -> GatewayInfo:
    name, vpc_id, spec, status, tags = data
    return GatewayInfo(
        str(name),
        str(vpc_id),
        str(spec),
        str(status),
        {str(k): str(v) for k, v in dict(tags).items()},
    )


def _read_vpn_connection(data: list[Any]) -> VpnConnection:
    cid, gateway, name, state, status, attach, transit, bgp, health, tunnels = data
    return VpnConnection(
        str(cid),
        str(gateway),
        str(name),
        state,
        status,
        attach,
        transit,
        bgp,
        health,
        tuple(Tunnel(*(tunnel)) for tunnel in tunnels),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def records_of(state: SavedState, keys: Iterable[GatewayKey]) -> list[GatewayRecord]:
    """The saved records of the gateways `keys` (the ones still configured)."""
    wanted = set(keys)
    return [record for record in state.records if record.key in wanted]
