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
- `InvalidNextHop.NotFound`: `NextHop` is no connection of the region, nor a tunnel of
  the connection;
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

DescribeVcoRouteEntries lists what the SDK's model documents: destination routes by
default (`RouteEntryType` custom), BGP routes when asked (bgp); a destination route is
`published`; a BGP route (`bgp`, from the scenario's `learned_routes`) is
`Active` with its `Source` (`CLOUD` or `VPN_BGP`), `AsPath` and `Community`; every route of
a dual-tunnel connection (every simulated one) carries `NextHopTunnelIdList`, the tunnels
whose phase 2 succeeded, and the answer carries `VpnRouteCounts` per type and source.

ASSUMPTIONS (the pages are silent; the exporter depends on none of them, each is marked
`ASSUMPTION` where it is built): which conflict rule yields which code (the table above);
the undocumented error for a connection that is not attached to a transit router
(`InvalidParameter` here); that `100.64.0.0/10` is accepted (the page warns that such a
route breaks the connection rather than saying it is refused, which is why the exporter
refuses it itself); that a new destination route is listed `published` at once, while its
connection is still `updating`; that a destination route has no `Source`; a BGP route's
`NextHop`, `Weight` and `CreateTime`; what `VpnRouteCounts` counts; the description rules
(1 to 100 characters, no `http://` or `https://` prefix, as other VPC descriptions); and
DeleteVcoRouteEntry's not-found code.

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
from exporter.simulator.scenario import LearnedRouteSpec
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

    def as_listed(self, connection: Connection) -> dict[str, Any]:
        """The route as DescribeVcoRouteEntries lists it."""
        return {
            "VpnConnectionId": self.connection_id,
            "RouteDest": self.route_dest,
            "NextHop": self.next_hop,
            "Weight": self.weight,
            # ASSUMPTION: `published` (the one documented value of a destination route) from
            # the create on, although the connection is `updating` for a while.
            "State": "published",
            # ASSUMPTION: `Source` is documented for BGP routes only; none here.
            "RouteEntryType": "custom",
            "CreateTime": self.create_time_ms,
            "NextHopTunnelIdList": connection.established_tunnel_ids(),
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
        # ASSUMPTION: the pages document no code for a connection that is not attached to a
        # transit router; the exporter refuses such a create itself and never reads this.
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
    own_tunnel = next_hop in (connection.tunnel(1)[0], connection.tunnel(2)[0])
    hop = connection if own_tunnel else call.state.fleet.connection(next_hop)
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


def _learned(route: LearnedRouteSpec, connection: Connection) -> dict[str, Any]:
    """A BGP route as DescribeVcoRouteEntries lists it."""
    return {
        "VpnConnectionId": connection.id,
        "RouteDest": route.route_dest,
        # ASSUMPTION: the next hop of a learned route is the connection; its weight (the
        # SDK documents `Weight` as not in use) 0; its creation time the connection's.
        "NextHop": connection.id,
        "Weight": 0,
        "State": "Active",
        "RouteEntryType": "bgp",
        "Source": route.source,
        "AsPath": route.as_path,
        "Community": route.community,
        "CreateTime": connection.create_time_ms,
        "NextHopTunnelIdList": connection.established_tunnel_ids(),
    }


def _route_counts(custom: int, learned: tuple[LearnedRouteSpec, ...]) -> list[dict[str, Any]]:
    """`VpnRouteCounts` (dual-tunnel connections): routes per type, BGP ones per source.

    ASSUMPTION: they count every route of the connection, whatever the filter and page.
    """
    counts: list[dict[str, Any]] = [{"RouteEntryType": "custom", "RouteCount": custom}]
    for source in sorted({route.source for route in learned}):
        total = sum(route.source == source for route in learned)
        counts.append({"RouteEntryType": "bgp", "Source": source, "RouteCount": total})
    return counts


def describe_vco_route_entries(call: Call) -> dict[str, Any]:
    connection = _connection(call)
    page = call.page()
    entry_type = call.param("RouteEntryType") or "custom"  # the documented default
    if entry_type not in ROUTE_TYPES:
        raise ErrorReply.invalid("RouteEntryType", entry_type)
    custom = call.state.extension(RouteTable).of(connection.id)
    if entry_type == "custom":
        listed = [entry.as_listed(connection) for entry in custom]
    else:
        listed = [_learned(route, connection) for route in connection.learned_routes]
    start = (page.number - 1) * page.size
    return {
        "TotalCount": len(listed),
        "PageNumber": page.number,
        "PageSize": page.size,
        "VcoRouteEntries": listed[start : start + page.size],
        "VpnRouteCounts": _route_counts(len(custom), connection.learned_routes),
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
        # ASSUMPTION: the DeleteVcoRouteEntry page documents no code for a missing route;
        # the exporter never deletes routes and depends on neither code nor text.
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
