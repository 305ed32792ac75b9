"""Destination-based routes of IPsec connections: CreateVcoRouteEntry,
DescribeVcoRouteEntries and DeleteVcoRouteEntry.

What the CreateVcoRouteEntry page documents is enforced, and every error code it lists is
reachable by state (the permission codes, which depend on a RAM policy the simulator does
not model, by an injected fault):

- `MissingParameter`; `InvalidParameter`: `Weight` not 0 or 100, `OverlayMode` not
  `Ipsec`, a bad `Description`, a connection not attached to a transit router;
- `InvalidVpnConnectionInstanceId.NotFound`: no such connection in the region;
- `IdempotentParameterMismatch`: a `ClientToken` seen before, with other parameters;
- `IllegalParam.RouteDest`: not an IPv4 CIDR, or `0.0.0.0/0`;
- `OperationFailed.InvalidCidrBlock`: host bits set; 'this network', loopback, multicast
  or reserved space;
- `InvalidNextHop.NotFound`: `NextHop` is no connection of the region;
- `VpnConnection.FinancialLocked`: the connection's gateway is `FinancialLocked`
  (its `business_status`);
- `TaskConflict`: the connection is still `updating` from an earlier route change;
- `VpnConnection.Configuring`: the connection is in another state than `attached`
  (`attaching`, `init`, ...);
- `VpnRouteEntry.AlreadyExists`: the same `RouteDest` and `NextHop` on the connection;
- `VpnRouteEntry.BackupRoute`: the same `RouteDest`, another `NextHop`, the same `Weight`
  (an active/standby pair needs weights 100 and 0);
- `VpnRouteEntry.Conflict`: `RouteDest` overlaps the connection's own `local_subnet`;
- `VpnRouteEntry.ConflictSSL`: `RouteDest` overlaps one of `routes.ssl_client_cidrs`;
- `Resource.QuotaFull`: the connection holds `routes.connection_quota` routes;
- `QuotaExceeded.VpnRouteEntry`: the region holds `routes.region_quota` routes;
- `DryRunOperation`: `DryRun=true` and every check passed;
- `Forbidden`, `Forbbiden.SubUser`: injected faults (`Fault.error("Forbidden", ...)`).

ASSUMPTIONS (the pages are silent; the exporter depends on none of them): which conflict
rule yields which code (the table above); the undocumented error for a connection that is
not attached to a transit router (`InvalidParameter` here); that `100.64.0.0/10` is
accepted (the page warns that such a route breaks the connection rather than saying it is
refused, which is why the exporter refuses it itself); a route's `State` in
DescribeVcoRouteEntries (`pending` while its connection is `updating`, then `published`);
`Source`; the description rules (1 to 100 characters, no `http://` or `https://` prefix,
as other VPC descriptions); and DeleteVcoRouteEntry's not-found code.

A created or deleted route takes its connection to `updating` for `routes.settle_seconds`
of simulator time, after which it is `attached` again (`Connection.settle`).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from typing import Any

from exporter.simulator.call import Call, Handler
from exporter.simulator.fleet import Connection
from exporter.simulator.replies import ErrorReply
from exporter.simulator.state import SimulatorState, StateExtension

_CREATE_PARAMS = (
    "RegionId",
    "VpnConnectionId",
    "RouteDest",
    "NextHop",
    "Weight",
    "Description",
    "OverlayMode",
)
"""The parameters a ClientToken binds: the same token with others is a mismatch."""

_WEIGHTS = frozenset({0, 100})
_MAX_DESCRIPTION = 100
_UNUSABLE_SPACE = (
    ipaddress.IPv4Network("0.0.0.0/8"),
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("224.0.0.0/4"),
    ipaddress.IPv4Network("240.0.0.0/4"),
)
"""Destinations no IPsec peer can be: 'this network', loopback, multicast, reserved."""
ROUTE_TYPES = frozenset({"custom", "bgp"})


@dataclass(slots=True)
class RouteEntry:
    """One destination-based route of a connection."""

    connection_id: str
    route_dest: str
    next_hop: str
    weight: int
    description: str
    overlay_mode: str
    create_time_ms: int
    entry_type: str = "custom"

    def as_listed(self, connection: Connection) -> dict[str, Any]:
        """The route as DescribeVcoRouteEntries lists it (the fields FACTS names)."""
        return {
            "VpnConnectionId": self.connection_id,
            "RouteDest": self.route_dest,
            "NextHop": self.next_hop,
            "Weight": self.weight,
            "State": "pending" if connection.state == "updating" else "published",
            "RouteEntryType": self.entry_type,
            "Source": self.entry_type,
            "CreateTime": self.create_time_ms,
        }

    def as_created(self) -> dict[str, Any]:
        """CreateVcoRouteEntry's answer; the page says `State` is always `published`."""
        return {
            "VpnConnectionId": self.connection_id,
            "RouteDest": self.route_dest,
            "NextHop": self.next_hop,
            "Weight": self.weight,
            "OverlayMode": self.overlay_mode,
            "State": "published",
            "CreateTime": self.create_time_ms,
            "Description": self.description,
        }


class RouteTable(StateExtension):
    """Every connection's routes, and the ClientTokens of the creates that succeeded."""

    def __init__(self, state: SimulatorState) -> None:
        super().__init__(state)
        self.routes: dict[str, list[RouteEntry]] = {}
        self.tokens: dict[str, tuple[tuple[str | None, ...], dict[str, Any]]] = {}

    def of(self, connection_id: str) -> list[RouteEntry]:
        return self.routes.setdefault(connection_id, [])

    def count_in(self, region_id: str) -> int:
        fleet = self.state.fleet
        return sum(
            len(entries)
            for connection_id, entries in self.routes.items()
            if (connection := fleet.connection(connection_id)) is not None
            and connection.region_id == region_id
        )


def _connection(call: Call) -> Connection:
    connection_id = call.require("VpnConnectionId")
    connection = call.state.fleet.connection(connection_id)
    if connection is None or connection.region_id != call.region_id:
        raise ErrorReply.about("InvalidVpnConnectionInstanceId.NotFound", connection_id)
    return connection.settle(call.now)


def _weight(call: Call) -> int:
    raw = call.require("Weight")
    try:
        weight = int(raw)
    except ValueError:
        raise ErrorReply.invalid("Weight", raw) from None
    if weight not in _WEIGHTS:
        raise ErrorReply.invalid("Weight", raw)
    return weight


def _route_dest(raw: str) -> ipaddress.IPv4Network:
    if "/" not in raw:
        raise ErrorReply("IllegalParam.RouteDest")
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ErrorReply("IllegalParam.RouteDest") from None
    if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen == 0:
        raise ErrorReply("IllegalParam.RouteDest")
    if str(network) != raw or any(network.overlaps(space) for space in _UNUSABLE_SPACE):
        raise ErrorReply("OperationFailed.InvalidCidrBlock")
    return network


def _description(call: Call) -> str:
    text = call.param("Description")
    if text is None:
        return ""
    if (
        len(text) > _MAX_DESCRIPTION
        or text.startswith(("http://", "https://"))
        or any(unicodedata.category(char).startswith("C") for char in text)
    ):
        raise ErrorReply.invalid("Description", text)
    return text


def _overlay_mode(call: Call) -> str:
    mode = call.param("OverlayMode") or "Ipsec"
    if mode != "Ipsec":
        raise ErrorReply.invalid("OverlayMode", mode)
    return mode


def _dry_run(call: Call) -> bool:
    raw = call.param("DryRun")
    if raw is None or raw.lower() == "false":
        return False
    if raw.lower() == "true":
        return True
    raise ErrorReply.invalid("DryRun", raw)


def _ready_for_change(call: Call, connection: Connection) -> None:
    """Refuse a change the connection cannot take now (billing, attachment, state)."""
    gateway = call.state.fleet.gateway(connection.gateway_id)
    if gateway is not None and gateway.business_status == "FinancialLocked":
        raise ErrorReply("VpnConnection.FinancialLocked")
    if connection.attach_type != "CEN":
        raise ErrorReply(
            "InvalidParameter",
            f"The specified VPN connection [{connection.id}] is not attached to a transit router.",
        )
    if connection.state == "updating":
        raise ErrorReply("TaskConflict")
    if connection.state != "attached":
        raise ErrorReply("VpnConnection.Configuring")


def _check_conflicts(
    call: Call,
    table: RouteTable,
    connection: Connection,
    dest: ipaddress.IPv4Network,
    next_hop: str,
    weight: int,
) -> None:
    entries = table.of(connection.id)
    for entry in entries:
        if entry.route_dest == str(dest) and entry.next_hop == next_hop:
            raise ErrorReply("VpnRouteEntry.AlreadyExists")
    for entry in entries:
        if entry.route_dest == str(dest) and entry.weight == weight:
            raise ErrorReply("VpnRouteEntry.BackupRoute")
    if dest.overlaps(ipaddress.IPv4Network(connection.local_subnet)):
        raise ErrorReply("VpnRouteEntry.Conflict")
    settings = call.state.scenario.routes
    if any(dest.overlaps(ipaddress.IPv4Network(cidr)) for cidr in settings.ssl_client_cidrs):
        raise ErrorReply("VpnRouteEntry.ConflictSSL")
    if len(entries) >= settings.connection_quota:
        raise ErrorReply("Resource.QuotaFull")
    if table.count_in(connection.region_id) >= settings.region_quota:
        raise ErrorReply("QuotaExceeded.VpnRouteEntry")


def _start_change(call: Call, connection: Connection) -> None:
    connection.state = "updating"
    connection.busy_until = call.now + call.state.scenario.routes.settle_seconds


def create_vco_route_entry(call: Call) -> dict[str, Any]:
    table = call.state.extension(RouteTable)
    weight = _weight(call)
    next_hop = call.require("NextHop")
    raw_dest = call.require("RouteDest")
    description = _description(call)
    overlay_mode = _overlay_mode(call)
    dry_run = _dry_run(call)
    connection = _connection(call)

    token = None if dry_run else call.param("ClientToken")
    fingerprint = tuple(call.param(name) for name in _CREATE_PARAMS)
    if token is not None and token in table.tokens:
        seen, answer = table.tokens[token]
        if seen != fingerprint:
            raise ErrorReply("IdempotentParameterMismatch")
        return dict(answer)

    dest = _route_dest(raw_dest)
    hop = call.state.fleet.connection(next_hop)
    if hop is None or hop.region_id != connection.region_id:
        raise ErrorReply.about("InvalidNextHop.NotFound", next_hop)
    _ready_for_change(call, connection)
    _check_conflicts(call, table, connection, dest, next_hop, weight)
    if dry_run:
        raise ErrorReply("DryRunOperation")

    entry = RouteEntry(
        connection_id=connection.id,
        route_dest=str(dest),
        next_hop=next_hop,
        weight=weight,
        description=description,
        overlay_mode=overlay_mode,
        create_time_ms=int(call.now * 1000),
    )
    table.of(connection.id).append(entry)
    _start_change(call, connection)
    answer = entry.as_created()
    if token is not None:
        table.tokens[token] = (fingerprint, answer)
    return dict(answer)


def describe_vco_route_entries(call: Call) -> dict[str, Any]:
    connection = _connection(call)
    page = call.page()
    entry_type = call.param("RouteEntryType")
    if entry_type is not None and entry_type not in ROUTE_TYPES:
        raise ErrorReply.invalid("RouteEntryType", entry_type)
    entries = [
        entry
        for entry in call.state.extension(RouteTable).of(connection.id)
        if entry_type in (None, entry.entry_type)
    ]
    start = (page.number - 1) * page.size
    return {
        "TotalCount": len(entries),
        "PageNumber": page.number,
        "PageSize": page.size,
        "VcoRouteEntries": [
            entry.as_listed(connection) for entry in entries[start : start + page.size]
        ],
    }


def delete_vco_route_entry(call: Call) -> dict[str, Any]:
    table = call.state.extension(RouteTable)
    weight = _weight(call)
    dest, next_hop = call.require("RouteDest"), call.require("NextHop")
    connection = _connection(call)
    entries = table.of(connection.id)
    found = next(
        (
            entry
            for entry in entries
            if (entry.route_dest, entry.next_hop, entry.weight) == (dest, next_hop, weight)
        ),
        None,
    )
    if found is None:
        # ASSUMPTION: the DeleteVcoRouteEntry page documents no code for a missing route.
        raise ErrorReply(
            "InvalidParameter", f"The specified route entry [{dest} via {next_hop}] does not exist."
        )
    _ready_for_change(call, connection)
    entries.remove(found)
    _start_change(call, connection)
    return {}


ACTIONS: dict[str, Handler] = {
    "CreateVcoRouteEntry": create_vco_route_entry,
    "DescribeVcoRouteEntries": describe_vco_route_entries,
    "DeleteVcoRouteEntry": delete_vco_route_entry,
}
