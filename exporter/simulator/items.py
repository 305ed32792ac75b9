"""The seven diagnostic items: their scenario settings and their `DiagnoseResultDescription`.

Values drift over time, deterministically: a sine of the diagnosis' begin time with a
per-gateway phase, within the bounds the scenario sets (`drift`), so a gateway keeps its
level class while its numbers move. The level itself is the scenario's.

Shapes FACTS marks unknown are this simulator's ASSUMPTIONS, labelled where they are built:
`VcoConfigConsistency`'s values and `RouteEntryConflict`'s payload.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Level(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    ERROR = "error"


ITEM_ORDER = (
    "RouteEntryConflict",
    "VpnRouteQuota",
    "VpnIPsecQuota",
    "VpnPbrRouteQuota",
    "VcoConfigConsistency",
    "VcoUserInternetIpConnectivity",
    "VcoPrivateConnectivity",
)
"""All items, in the order the API page lists them; a running diagnosis finishes them in it."""

TOTAL_ITEMS = len(ITEM_ORDER)

# ASSUMPTION: the API documents `quotaName` only as "the quota ID"; these IDs are made up.
DEFAULT_QUOTA_NAMES = {
    "VpnRouteQuota": "vpn_quota_route_entries_num",
    "VpnIPsecQuota": "vpn_quota_ipsec_connections_num",
    "VpnPbrRouteQuota": "vpn_quota_pbr_route_entries_num",
}

_QUOTA_PERIOD = 3600.0
_RTT_PERIOD = 600.0
_LOSS_PERIOD = 900.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuotaItem(_Model):
    """`used` of `quantity`; `used` drifts by up to ±`drift`."""

    name: Literal["VpnRouteQuota", "VpnIPsecQuota", "VpnPbrRouteQuota"]
    level: Level = Level.NORMAL
    quota_name: str | None = None
    quantity: int = Field(ge=1)
    used: int = Field(ge=0)
    drift: int = Field(default=0, ge=0)


class ProbeItem(_Model):
    """A connectivity probe. `rtt_ms: -1` means no reply (then nothing drifts).

    IPs left out come from the connection: the customer gateway's public IP for the
    internet probe; the connection's VPC-side and on-premises IPs for the private one.
    """

    name: Literal["VcoUserInternetIpConnectivity", "VcoPrivateConnectivity"]
    level: Level = Level.NORMAL
    target_ip: str | None = None
    src_ip: str | None = None
    rtt_ms: float = Field(ge=-1)
    loss_rate: float = Field(default=0.0, ge=0, le=100)
    rtt_drift_ms: float = Field(default=0.0, ge=0)
    loss_drift: float = Field(default=0.0, ge=0)


class ConfigDiff(_Model):
    """One setting that differs between the local end and the peer."""

    setting: str
    local: str
    peer: str


class ConsistencyItem(_Model):
    """The consistency of the connection's IPsec settings with its peer's.

    `lack_as_boolean` writes `vcoLackConf` as a boolean (`false`: nothing lacking), the form
    the API page's wording suggests, instead of a list of lacking settings;
    `peer_unavailable` says the peer's configuration could not be obtained at all
    (`vcoLackConf: true`, nothing running or differing is known).
    """

    name: Literal["VcoConfigConsistency"]
    level: Level = Level.NORMAL
    diff: list[ConfigDiff] = []
    lack: list[str] = []
    lack_as_boolean: bool = False
    peer_unavailable: bool = False

    @model_validator(mode="after")
    def _one_lack_form(self) -> Self:
        if (self.lack_as_boolean or self.peer_unavailable) and self.lack:
            raise ValueError("a boolean vcoLackConf cannot list lacking settings")
        if self.peer_unavailable and self.diff:
            raise ValueError("an unavailable peer configuration has no differing settings")
        return self


class RouteConflict(_Model):
    route_dest: str
    next_hop: str
    conflicts_with: str


class RouteConflictItem(_Model):
    name: Literal["RouteEntryConflict"]
    level: Level = Level.NORMAL
    conflicts: list[RouteConflict] = []


ItemSpec = Annotated[
    QuotaItem | ProbeItem | ConsistencyItem | RouteConflictItem, Field(discriminator="name")
]

DEFAULT_ITEMS: dict[str, ItemSpec] = {
    "RouteEntryConflict": RouteConflictItem(name="RouteEntryConflict"),
    "VpnRouteQuota": QuotaItem(name="VpnRouteQuota", quantity=100, used=20, drift=3),
    "VpnIPsecQuota": QuotaItem(name="VpnIPsecQuota", quantity=10, used=2),
    "VpnPbrRouteQuota": QuotaItem(name="VpnPbrRouteQuota", quantity=100, used=10, drift=2),
    "VcoConfigConsistency": ConsistencyItem(name="VcoConfigConsistency"),
    "VcoUserInternetIpConnectivity": ProbeItem(
        name="VcoUserInternetIpConnectivity", rtt_ms=25.0, rtt_drift_ms=5.0
    ),
    "VcoPrivateConnectivity": ProbeItem(
        name="VcoPrivateConnectivity", rtt_ms=30.0, rtt_drift_ms=5.0
    ),
}
"""A healthy gateway's items; a scenario lists only the items that differ."""


def complete_items(items: list[ItemSpec] | tuple[ItemSpec, ...]) -> tuple[ItemSpec, ...]:
    """All seven items in API order: the given ones, defaults for the rest."""
    given: dict[str, ItemSpec] = {item.name: item for item in items}
    return tuple(given.get(name, DEFAULT_ITEMS[name]) for name in ITEM_ORDER)


def wave(at: float, phase: float, period: float) -> float:
    """A deterministic oscillation in [-1, 1]."""
    return math.sin(2 * math.pi * at / period + phase)


# ASSUMPTION (shape undocumented): both ends' settings as flat objects; the peer's differs
# where the scenario says so; `vcoDiffConf` a list with one entry per differing setting;
# `vcoLackConf` a list of the settings the peer lacks, or a boolean (`ConsistencyItem`).
BASE_IPSEC_CONFIG = {
    "IkeConfig.IkeVersion": "ikev2",
    "IkeConfig.IkeMode": "main",
    "IkeConfig.IkeEncAlg": "aes",
    "IkeConfig.IkeAuthAlg": "sha1",
    "IkeConfig.IkePfs": "group2",
    "IkeConfig.IkeLifetime": "86400",
    "IpsecConfig.IpsecEncAlg": "aes",
    "IpsecConfig.IpsecAuthAlg": "sha1",
    "IpsecConfig.IpsecPfs": "group2",
    "IpsecConfig.IpsecLifetime": "86400",
}


def describe(
    item: ItemSpec,
    *,
    at: float,
    phase: float,
    internet_target: str,
    private_src: str,
    private_target: str,
) -> dict[str, Any]:
    """The description object of `item` as diagnosed at time `at` (before JSON encoding)."""
    if isinstance(item, QuotaItem):
        used = round(item.used + item.drift * wave(at, phase, _QUOTA_PERIOD))
        return {
            "quotaName": item.quota_name or DEFAULT_QUOTA_NAMES[item.name],
            "quantity": item.quantity,
            "used": min(max(used, 0), item.quantity),
        }
    if isinstance(item, ProbeItem):
        if item.rtt_ms < 0:
            rtt = -1.0
        else:
            drifted = item.rtt_ms + item.rtt_drift_ms * wave(at, phase + 1.0, _RTT_PERIOD)
            rtt = round(max(drifted, 0.1), 1)
        loss = item.loss_rate + item.loss_drift * wave(at, phase + 2.0, _LOSS_PERIOD)
        loss_rate = round(min(max(loss, 0.0), 100.0), 1)
        if item.name == "VcoUserInternetIpConnectivity":
            return {
                "targetIp": item.target_ip or internet_target,
                "rtt": rtt,
                "lossRate": loss_rate,
            }
        return {
            "targetIp": item.target_ip or private_target,
            "srcIp": item.src_ip or private_src,
            "rtt": rtt,
            "lossRate": loss_rate,
        }
    if isinstance(item, ConsistencyItem):
        if item.peer_unavailable:
            # ASSUMPTION (shape undocumented): with the peer's configuration out of reach,
            # nothing is running or differing as far as the diagnosis knows.
            return {
                "vcoConf": dict(BASE_IPSEC_CONFIG),
                "vcoRunningConf": {},
                "vcoDiffConf": [],
                "vcoLackConf": True,
            }
        peer = dict(BASE_IPSEC_CONFIG)
        for diff in item.diff:
            peer[diff.setting] = diff.peer
        local = {**BASE_IPSEC_CONFIG, **{d.setting: d.local for d in item.diff}}
        for setting in item.lack:
            peer.pop(setting, None)
        return {
            "vcoConf": local,
            "vcoRunningConf": peer,
            "vcoDiffConf": [
                {"name": d.setting, "localValue": d.local, "peerValue": d.peer} for d in item.diff
            ],
            "vcoLackConf": False if item.lack_as_boolean else list(item.lack),
        }
    # ASSUMPTION (shape undocumented): a list of conflicting routes.
    return {
        "conflictRoutes": [
            {"routeDest": c.route_dest, "nextHop": c.next_hop, "conflictWith": c.conflicts_with}
            for c in item.conflicts
        ]
    }
