"""Typed values for a gateway's quick diagnosis: what the parser produces and state keeps.

Past the parser nothing handles the API's raw JSON. Every numeric field here is already
validated (finite, non-negative, in range) or None when the payload did not allow a
trustworthy value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.model.drift import Drift


class Level(StrEnum):
    """`DiagnoseResultLevel`; all three are always exported as a 0/1 state set."""

    NORMAL = "normal"
    WARNING = "warning"
    ERROR = "error"


QUOTA_ITEMS = frozenset({"VpnRouteQuota", "VpnIPsecQuota", "VpnPbrRouteQuota"})
PROBE_ITEMS = frozenset({"VcoUserInternetIpConnectivity", "VcoPrivateConnectivity"})
CONSISTENCY_ITEM = "VcoConfigConsistency"
ROUTE_CONFLICT_ITEM = "RouteEntryConflict"


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """`VpnRouteQuota` / `VpnIPsecQuota` / `VpnPbrRouteQuota`: `used` of `quantity`."""

    quota_name: str
    used: float | None
    limit: float | None


@dataclass(frozen=True, slots=True)
class ProbeReading:
    """A connectivity probe. `loss_ratio` None: unusable.

    `rtt_seconds` is None whenever there is no round-trip time to export; `no_reply` says
    whether that is because the API reported no reply (`rtt: -1`) rather than because its
    `rtt` was missing or unusable. Keeping the two apart stops a garbled `rtt` from being
    exported as "unreachable".
    """

    source_ip: str
    target_ip: str
    rtt_seconds: float | None
    loss_ratio: float | None
    no_reply: bool = False

    @property
    def reachable(self) -> bool | None:
        """Whether the probe got replies; None when the payload does not tell.

        False on either evidence: no reply, or every packet lost. True when there is a
        round-trip time or a loss below 100 %. None (export nothing rather than guess)
        only when neither `rtt` nor `lossRate` was usable.
        """
        if self.no_reply or self.loss_ratio == 1.0:
            return False
        if self.rtt_seconds is not None or self.loss_ratio is not None:
            return True
        return None


@dataclass(frozen=True, slots=True)
class ConsistencyReading:
    """`VcoConfigConsistency`. `diff_entries` only when the payload lets us count them.

    `peer_available` False: the system could not obtain the peer's configuration
    (`vcoLackConf: true`), so consistency is unknown and `consistent` is None; True when
    `vcoLackConf` says nothing is lacking or lists what is; None when it does not tell.
    """

    consistent: bool | None
    diff_entries: int | None
    peer_available: bool | None = None


@dataclass(frozen=True, slots=True)
class RouteConflictReading:
    """`RouteEntryConflict`; its shape is undocumented, so the count is best effort."""

    conflicts: int | None


@dataclass(frozen=True, slots=True)
class UnknownReading:
    """An item this exporter does not know, or a description it could not read."""


Reading = QuotaReading | ProbeReading | ConsistencyReading | RouteConflictReading | UnknownReading


@dataclass(frozen=True, slots=True)
class DiagnoseItem:
    """One entry of `DiagnoseResult`: its name, level and the reading of its description."""

    name: str
    level: Level | None
    reading: Reading
    parse_error: str | None = None
    """Why the description could not be read (for the log line and the counter)."""
    drift: tuple[Drift, ...] = ()
    """What was read despite an unexpected form (`exporter.model.drift`)."""


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One GetVpnGatewayDiagnoseResult response, typed."""

    vpn_gateway_id: str
    diagnose_id: str
    connection_id: str
    """`ResourceInstanceId`: the IPsec connection the diagnosis was about."""
    begin_time: float | None
    finish_time: float | None
    finished_count: int
    total_count: int
    items: tuple[DiagnoseItem, ...] = field(default=())
    request_id: str = ""

    @property
    def running(self) -> bool:
        """The diagnosis has not finished all its items yet."""
        return self.finished_count < self.total_count
