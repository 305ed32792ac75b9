"""The simulated fleet at run time: gateways and connections, indexed for cheap lookups.

Requests cost what their answer costs, not what the fleet costs: lookups by ID are dict
hits, and DescribeVpnGateways filters start from a prebuilt index (region, field, value).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.simulator.items import ItemSpec, complete_items
from exporter.simulator.scenario import ConnectionSpec, GatewaySpec, LearnedRouteSpec

_FILTER_ATTRIBUTES = {
    "VpnGatewayId": "id",
    "VpcId": "vpc_id",
    "Status": "status",
    "BusinessStatus": "business_status",
    "ResourceGroupId": "resource_group_id",
}
GATEWAY_FILTERS = tuple(_FILTER_ATTRIBUTES)
"""DescribeVpnGateways' exact-match filters (besides tags)."""


@dataclass(slots=True, eq=False)
class Connection:
    """An IPsec connection. `state` is mutable: route changes take it through `updating`."""

    id: str
    name: str
    gateway_id: str
    region_id: str
    customer_gateway_ip: str
    local_ip: str
    remote_ip: str
    local_subnet: str
    remote_subnet: str
    attach_type: str
    transit_router_id: str | None
    status: str
    bgp_status: str
    health_check_status: str
    create_time_ms: int
    state: str
    tags: dict[str, str] = field(default_factory=dict)
    busy_until: float | None = None
    """While a route change runs (`state` is `updating`): when it ends."""
    tunnels: list[tuple[str, str]] = field(default_factory=list)
    """(State, Status) of each tunnel; empty: two tunnels in the connection's own status."""
    learned_routes: tuple[LearnedRouteSpec, ...] = ()
    """BGP routes the connection learned (read-only)."""

    def tunnel(self, index: int) -> tuple[str, str, str]:
        """(TunnelId, State, Status) of tunnel 1 or 2: every simulated connection is
        dual-tunnel."""
        state, status = (
            self.tunnels[index - 1] if len(self.tunnels) >= index else ("active", self.status)
        )
        return f"tun-{suffix(self.id)}{index}", state, status

    def established_tunnel_ids(self) -> list[str]:
        """The tunnels whose IPsec SA (phase 2) is up."""
        return [
            tunnel_id
            for tunnel_id, _, status in (self.tunnel(1), self.tunnel(2))
            if status == "ipsec_sa_established"
        ]

    def settle(self, now: float) -> Connection:
        """End a route change whose time has come (back to `attached`); return self.

        Lazy, so the simulator clock alone decides, and tests move it instead of sleeping.
        """
        if self.busy_until is not None and now >= self.busy_until:
            self.state, self.busy_until = "attached", None
        return self


@dataclass(slots=True, eq=False)
class Gateway:
    """A VPN gateway with its connections and the items its diagnoses find."""

    id: str
    name: str
    region_id: str
    vpc_id: str
    spec: str
    status: str
    business_status: str
    resource_group_id: str
    internet_ip: str
    description: str
    tags: dict[str, str]
    create_time_ms: int
    has_diagnosis: bool
    connections: list[Connection]
    items: tuple[ItemSpec, ...]
    """All seven, in API order."""
    phase: float
    """Per-gateway phase of the drift, so gateways do not move in lockstep."""

    def filter_value(self, name: str) -> str:
        """The value DescribeVpnGateways' filter `name` compares with."""
        value: str = getattr(self, _FILTER_ATTRIBUTES[name])
        return value


def phase_of(resource_id: str) -> float:
    return zlib.crc32(resource_id.encode()) / 2**32 * 2 * math.pi


def suffix(resource_id: str) -> str:
    """`vpn-hz1healthy` → `hz1healthy`."""
    return resource_id.partition("-")[2]


def connection_from_spec(spec: ConnectionSpec, gateway: GatewaySpec) -> Connection:
    return Connection(
        id=spec.id,
        name=spec.name,
        gateway_id=gateway.id,
        region_id=gateway.region_id,
        customer_gateway_ip=spec.customer_gateway_ip,
        local_ip=spec.local_ip,
        remote_ip=spec.remote_ip,
        local_subnet=spec.local_subnet,
        remote_subnet=spec.remote_subnet,
        attach_type=spec.attach_type,
        transit_router_id=spec.transit_router_id,
        status=spec.status,
        bgp_status=spec.bgp_status,
        health_check_status=spec.health_check_status,
        create_time_ms=int(gateway.create_time.timestamp() * 1000),
        state=spec.state or ("attached" if spec.attach_type == "CEN" else "active"),
        tags=dict(spec.tags),
        tunnels=[(tunnel.state, tunnel.status) for tunnel in spec.tunnels],
        learned_routes=tuple(spec.learned_routes),
    )


def gateway_from_spec(spec: GatewaySpec) -> Gateway:
    connections = spec.connections or [
        ConnectionSpec(id=f"vco-{suffix(spec.id)}", name=f"{spec.name}-ipsec")
    ]
    return Gateway(
        id=spec.id,
        name=spec.name,
        region_id=spec.region_id,
        vpc_id=spec.vpc_id,
        spec=spec.spec,
        status=spec.status,
        business_status=spec.business_status,
        resource_group_id=spec.resource_group_id,
        internet_ip=spec.internet_ip,
        description=spec.description,
        tags=dict(spec.tags),
        create_time_ms=int(spec.create_time.timestamp() * 1000),
        has_diagnosis=spec.has_diagnosis,
        connections=[connection_from_spec(c, spec) for c in connections],
        items=complete_items(spec.items),
        phase=phase_of(spec.id),
    )


class Fleet:
    """All gateways and connections, by ID and by region, with filter indexes."""

    def __init__(self, gateways: Iterable[Gateway]) -> None:
        self._gateways: dict[str, Gateway] = {}
        self._connections: dict[str, Connection] = {}
        self._gateways_by_region: dict[str, list[Gateway]] = {}
        self._connections_by_region: dict[str, list[Connection]] = {}
        self._index: dict[tuple[str, str, str | None], list[Gateway]] = {}
        for gateway in gateways:
            self._add(gateway)

    def _add(self, gateway: Gateway) -> None:
        if gateway.id in self._gateways:
            raise ValueError(f"duplicate gateway ID {gateway.id}")
        self._gateways[gateway.id] = gateway
        region = gateway.region_id
        self._gateways_by_region.setdefault(region, []).append(gateway)
        for name in GATEWAY_FILTERS:
            self._index.setdefault((region, name, gateway.filter_value(name)), []).append(gateway)
        for key, value in gateway.tags.items():
            self._index.setdefault((region, f"Tag:{key}", value), []).append(gateway)
            self._index.setdefault((region, f"Tag:{key}", None), []).append(gateway)
        for connection in gateway.connections:
            if connection.id in self._connections:
                raise ValueError(f"duplicate connection ID {connection.id}")
            self._connections[connection.id] = connection
            self._connections_by_region.setdefault(region, []).append(connection)

    def add_gateway(self, gateway: Gateway) -> None:
        """A gateway created while the simulator runs (DescribeVpnGateways finds it)."""
        self._add(gateway)

    def remove_gateway(self, gateway_id: str) -> None:
        """A gateway deleted while the simulator runs, with its connections."""
        gateway = self._gateways.pop(gateway_id)
        region = gateway.region_id
        self._gateways_by_region[region].remove(gateway)
        for entries in self._index.values():
            if gateway in entries:
                entries.remove(gateway)
        for connection in gateway.connections:
            self._connections.pop(connection.id, None)
            self._connections_by_region[region].remove(connection)

    def __len__(self) -> int:
        return len(self._gateways)

    def gateway(self, gateway_id: str) -> Gateway | None:
        return self._gateways.get(gateway_id)

    def connection(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    def regions(self) -> list[str]:
        return list(self._gateways_by_region)

    def connections_in(self, region_id: str) -> Sequence[Connection]:
        return self._connections_by_region.get(region_id, [])

    def find_gateways(
        self,
        region_id: str,
        filters: Mapping[str, str],
        tags: Sequence[tuple[str, str | None]] = (),
    ) -> Sequence[Gateway]:
        """Gateways of a region matching every filter and tag (a tag without value: any).

        Work is proportional to the smallest matching index list, not to the fleet.
        """
        keys: list[tuple[str, str, str | None]] = [
            (region_id, name, value) for name, value in filters.items()
        ]
        keys += [(region_id, f"Tag:{key}", value) for key, value in tags]
        if not keys:
            return self._gateways_by_region.get(region_id, [])
        candidates = [self._index.get(key, []) for key in keys]
        smallest = min(candidates, key=len)
        if len(candidates) == 1:
            return smallest
        return [
            gateway
            for gateway in smallest
            if all(gateway.filter_value(name) == value for name, value in filters.items())
            and all(
                key in gateway.tags and (value is None or gateway.tags[key] == value)
                for key, value in tags
            )
        ]
