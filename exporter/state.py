"""What the exporter knows about each gateway: immutable records and how polls change them.

A `GatewayRecord` is never mutated: every poll outcome produces a new record, which the
fleet (`exporter.fleet`) swaps in and hands to the exposition to re-render that one
gateway. The rules of DESIGN's failure semantics live here, as pure functions of the old
record, the outcome and the time, so tests can check them without a server or a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from exporter.diagnosis import Diagnosis

EMPTY_CONNECTIONS: Mapping[str, ConnectionDiagnosis] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """Identifies one polled gateway; a gateway listed under two targets is two keys."""

    target: str
    region_id: str
    vpn_gateway_id: str


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """Descriptive fields from DescribeVpnGateways (`aliyun_vpn_gateway_info`)."""

    name: str
    vpc_id: str
    spec: str
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectionDiagnosis:
    """The latest diagnosis seen for one connection and when a poll last confirmed it."""

    finished: Diagnosis | None
    """The last finished diagnosis of the connection (its items are what we export)."""
    latest: Diagnosis
    """The most recent diagnosis, finished or still running (its progress is exported)."""
    confirmed_at: float
    """Wall time of the last successful poll that returned this connection's diagnosis."""


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
    latest_connection: str | None = None
    """The connection of the gateway's latest diagnosis (gateway-scoped items come from it)."""
    connections: Mapping[str, ConnectionDiagnosis] = field(
        default_factory=lambda: EMPTY_CONNECTIONS
    )
    info: GatewayInfo | None = None

    @property
    def running(self) -> bool | None:
        """Whether the gateway's latest diagnosis is still running (None: no diagnosis)."""
        latest = self.connections.get(self.latest_connection or "")
        return None if latest is None else latest.latest.running

    def current(self, stale_after: float, now: float) -> GatewayRecord:
        """This record without the connections whose data went stale by `now`."""
        fresh = {
            cid: conn
            for cid, conn in self.connections.items()
            if now - conn.confirmed_at < stale_after
        }
        if len(fresh) == len(self.connections):
            return self
        return replace(self, connections=MappingProxyType(fresh))

    def expires_at(self, stale_after: float) -> float | None:
        """When the next connection's data goes stale, or None if there is nothing to drop."""
        if not self.connections:
            return None
        return min(conn.confirmed_at for conn in self.connections.values()) + stale_after


def with_diagnosis(record: GatewayRecord, diagnosis: Diagnosis, poll: PollResult) -> GatewayRecord:
    """A successful poll that returned a diagnosis (finished or running)."""
    previous = record.connections.get(diagnosis.connection_id)
    finished = diagnosis if not diagnosis.running else (previous.finished if previous else None)
    connections = dict(record.connections)
    connections[diagnosis.connection_id] = ConnectionDiagnosis(
        finished=finished, latest=diagnosis, confirmed_at=poll.finished_at
    )
    return replace(
        record,
        last_poll=poll,
        last_success_at=poll.finished_at,
        available=True,
        latest_connection=diagnosis.connection_id,
        connections=MappingProxyType(connections),
    )


def without_diagnosis(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """A successful poll that said the gateway has no diagnosis at all."""
    return replace(
        record,
        last_poll=poll,
        last_success_at=poll.finished_at,
        available=False,
        latest_connection=None,
        connections=EMPTY_CONNECTIONS,
    )


def with_failed_diagnosis(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """The API answered that the diagnosis itself failed: keep the old data until stale."""
    return replace(record, last_poll=poll, last_success_at=poll.finished_at)


def with_failed_poll(record: GatewayRecord, poll: PollResult) -> GatewayRecord:
    """The poll failed: the last good values stay until they go stale."""
    return replace(record, last_poll=poll)
