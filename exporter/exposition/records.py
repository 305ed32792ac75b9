"""What the exporter knows about each gateway: immutable records and how polls change them.

A `GatewayRecord` is never mutated: every poll outcome produces a new record, which the
fleet (`exporter.exposition.fleet`) swaps in and hands to the exposition to re-render that one
gateway. The rules of DESIGN's failure semantics live here, as pure functions of the old
record, the outcome and the time, so tests can check them without a server or a clock.

Records hold the *latest known* state: a failed poll changes only the poll series, never
the data. Data goes only when its gateway or connection is gone (from the config, a
successful discovery or a successful connection listing), or, when the operator opted
in to `poll.stale_after`, once it is older than that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.model.connection import VpnConnection
from exporter.model.diagnosis import Diagnosis
from exporter.model.gateway import GatewayInfo

EMPTY_CONNECTIONS: Mapping[str, ConnectionDiagnosis] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """Identifies one polled gateway; a gateway listed under two targets is two keys."""

    target: str
    region_id: str
    vpn_gateway_id: str


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """What is exported about one target itself: its settings and its achieved pace."""

    name: str
    profile: str = ""
    """The credentials profile the target calls with (`aliyun_vpn_target_info`)."""
    region_id: str = ""
    interval: float = 0.0
    """The configured poll interval."""
    effective_interval: float = 0.0
    """The pace achieved (see `exporter.collect.scheduler`), the planned one before a
    cycle has completed."""
    last_launch_at: float | None = None
    """Wall time the scheduler last launched a poll of the target."""
    diagnose_interval: float | None = None
    """The scheduled-diagnosis interval (None: scheduled diagnoses are off)."""
    diagnose_max_age: float | None = None
    """Age after which a gateway's latest finished diagnosis counts as stale."""


@dataclass(frozen=True, slots=True)
class ConnectionDiagnosis:
    """The latest diagnosis seen for one connection and when a poll last confirmed it."""

    finished: Diagnosis | None
    """The last finished diagnosis of the connection (its items are what we export)."""
    latest: Diagnosis
    """The most recent diagnosis, finished or still running (its progress is exported)."""
    confirmed_at: float
    """Wall time of the last successful poll that returned this connection's diagnosis."""
    keep_until: float | None = None
    """For a connection the exporter diagnoses on a schedule: its data is not stale before
    this wall time (the next scheduled diagnosis is not due yet, and nothing else would
    confirm it), whatever `confirmed_at` says."""

    def fresh(self, stale_after: float | None, now: float) -> bool:
        """Whether this connection's data is still to be exported at `now` (always,
        unless the operator set `poll.stale_after`)."""
        if stale_after is None:
            return True
        return now - self.confirmed_at < stale_after or (
            self.keep_until is not None and now < self.keep_until
        )

    def expires_at(self, stale_after: float) -> float:
        return max(self.confirmed_at + stale_after, self.keep_until or 0.0)


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of one poll of one gateway."""

    success: bool
    finished_at: float
    duration: float
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    """Everything exported about one gateway, as of its last poll."""

    key: GatewayKey
    last_poll: PollResult | None = None
    last_success_at: float | None = None
    available: bool | None = None
    """False once the API said the gateway has no diagnosis (`InvalidVpnGatewayId.NotFound`)."""
    found: bool = True
    """False once the API said the gateway does not exist
    (`InvalidVpnGatewayInstanceId.NotFound`); True again after any answer about it."""
    latest_connection: str | None = None
    """The connection of the gateway's latest diagnosis (gateway-scoped items come from it)."""
    connections: Mapping[str, ConnectionDiagnosis] = field(
        default_factory=lambda: EMPTY_CONNECTIONS
    )
    info: GatewayInfo | None = None
    vpn_connections: tuple[VpnConnection, ...] | None = None
    """The gateway's connections as DescribeVpnConnections last listed them."""
    vpn_connections_at: float | None = None
    """Wall time of that listing (its data goes stale like a poll's)."""

    @property
    def running(self) -> bool | None:
        """Whether the gateway's latest diagnosis is still running (None: no diagnosis)."""
        latest = self.connections.get(self.latest_connection or "")
        return None if latest is None else latest.latest.running

    def current(self, stale_after: float | None, now: float) -> GatewayRecord:
        """This record without the connections whose data went stale by `now` (with
        `stale_after` None, the default, nothing ever goes stale)."""
        if stale_after is None:
            return self
        record = self
        fresh = {
            cid: conn for cid, conn in self.connections.items() if conn.fresh(stale_after, now)
        }
        if len(fresh) != len(self.connections):
            record = replace(record, connections=MappingProxyType(fresh))
        listed_at = self.vpn_connections_at
        if listed_at is not None and now - listed_at >= stale_after:
            record = replace(record, vpn_connections=None, vpn_connections_at=None)
        return record

    def expires_at(self, stale_after: float | None) -> float | None:
        """When the next connection's data goes stale, or None if there is nothing to drop."""
        if stale_after is None:
            return None
        times = [conn.expires_at(stale_after) for conn in self.connections.values()]
        if self.vpn_connections_at is not None:
            times.append(self.vpn_connections_at + stale_after)
        return min(times, default=None)


def with_diagnosis(record: GatewayRecord, diagnosis: Diagnosis, poll: PollResult) -> GatewayRecord:
    """A successful poll that returned a diagnosis (finished or running)."""
    return replace(
        _with_connection_diagnosis(record, diagnosis, poll.finished_at),
        last_poll=poll,
        last_success_at=poll.finished_at,
        found=True,
    )


def with_scheduled_diagnosis(
    record: GatewayRecord, diagnosis: Diagnosis, read_at: float, keep_until: float
) -> GatewayRecord:
    """A diagnosis the exporter started, read by its DiagnoseId at `read_at`: the
    gateway's latest diagnosis now. The poll series (`last_poll`) are the gateway
    polls' own and stay as they are."""
    record = _with_connection_diagnosis(record, diagnosis, read_at)
    connection = record.connections[diagnosis.connection_id]
    connections = dict(record.connections)
    connections[diagnosis.connection_id] = replace(
        connection, keep_until=max(keep_until, connection.keep_until or 0.0)
    )
    return replace(record, connections=MappingProxyType(connections))


def _with_connection_diagnosis(
    record: GatewayRecord, diagnosis: Diagnosis, confirmed_at: float
) -> GatewayRecord:
    previous = record.connections.get(diagnosis.connection_id)
    if previous is not None:
        diagnosis = _sharing_items(diagnosis, previous.latest)
    finished = diagnosis if not diagnosis.running else (previous.finished if previous else None)
    connections = dict(record.connections)
    connections[diagnosis.connection_id] = ConnectionDiagnosis(
        finished=finished,
        latest=diagnosis,
        confirmed_at=confirmed_at,
        keep_until=previous.keep_until if previous else None,
    )
    return replace(
        record,
        available=True,
        latest_connection=diagnosis.connection_id,
        connections=MappingProxyType(connections),
    )


def _sharing_items(diagnosis: Diagnosis, before: Diagnosis) -> Diagnosis:
    """`diagnosis` holding `before`'s item objects wherever they are equal: most items read
    the same poll after poll, and the objects kept for long are then the ones already
    kept, not new ones (each would be one more object for the garbage collector's full
    collections to scan, which stall the event loop in proportion)."""
    old = {item.name: item for item in before.items}
    items = tuple(
        old[item.name] if old.get(item.name) == item else item for item in diagnosis.items
    )
    if all(a is b for a, b in zip(items, diagnosis.items, strict=True)):
        return diagnosis
    return replace(diagnosis, items=items)


def with_vpn_connections(
    record: GatewayRecord, connections: tuple[VpnConnection, ...], listed_at: float
) -> GatewayRecord:
    """DescribeVpnConnections listed the gateway's connections at `listed_at`.

    A connection the previous listing had and this one lacks is gone: its diagnosis
    series go too. Diagnoses of connections no listing ever named stay (the listing
    covers IPsec connections only)."""
    listed = {connection.vpn_connection_id for connection in connections}
    gone = {
        connection.vpn_connection_id
        for connection in record.vpn_connections or ()
        if connection.vpn_connection_id not in listed
    }
    if gone & record.connections.keys():
        kept = {cid: conn for cid, conn in record.connections.items() if cid not in gone}
        record = replace(
            record,
            connections=MappingProxyType(kept),
            latest_connection=(
                None if record.latest_connection in gone else record.latest_connection
            ),
        )
    return replace(record, vpn_connections=connections, vpn_connections_at=listed_at)


def with_info(record: GatewayRecord, info: GatewayInfo | None) -> GatewayRecord:
    """DescribeVpnGateways described the gateway (None: it no longer does)."""
    return record if record.info == info else replace(record, info=info)


def without_diagnosis(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """A successful poll that said the gateway has no diagnosis at all."""
    return replace(
        record,
        last_poll=poll,
        last_success_at=poll.finished_at,
        available=False,
        found=True,
        latest_connection=None,
        connections=EMPTY_CONNECTIONS,
    )


def with_failed_diagnosis(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """The API answered that the diagnosis itself failed: keep the old data."""
    return replace(record, last_poll=poll, last_success_at=poll.finished_at, found=True)


def with_failed_poll(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """The poll failed: the last good values stay (latest known)."""
    return replace(record, last_poll=poll)


def with_missing_gateway(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """The API said the gateway does not exist (`InvalidVpnGatewayInstanceId.NotFound`):
    a failed poll that keeps the data and marks the gateway not found, so a key for the
    wrong account pages instead of quietly resolving everything."""
    return replace(record, last_poll=poll, found=False)
