"""Actions about the fleet: DescribeVpnGateways and DescribeVpnConnections."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from exporter.simulator.call import Call, Handler
from exporter.simulator.fleet import GATEWAY_FILTERS, Connection, Gateway

T = TypeVar("T")


def _tags(tags: dict[str, str]) -> dict[str, Any]:
    return {"Tag": [{"Key": key, "Value": value} for key, value in tags.items()]}


def gateway_json(gateway: Gateway) -> dict[str, Any]:
    return {
        "VpnGatewayId": gateway.id,
        "Name": gateway.name,
        "Description": gateway.description,
        "VpcId": gateway.vpc_id,
        "VSwitchId": f"vsw-{gateway.vpc_id.partition('-')[2]}",
        "Status": gateway.status,
        "BusinessStatus": gateway.business_status,
        "Spec": gateway.spec,
        "InternetIp": gateway.internet_ip,
        "CreateTime": gateway.create_time_ms,
        "EndTime": gateway.create_time_ms + 365 * 86_400_000,
        "ChargeType": "PrePay",
        "IpsecVpn": "enable",
        "SslVpn": "disable",
        "SslMaxConnections": 5,
        "EnableBgp": False,
        "AutoPropagate": False,
        "NetworkType": "public",
        "VpnType": "Normal",
        "GatewayType": "Normal",
        "ResourceGroupId": gateway.resource_group_id,
        "Tags": _tags(gateway.tags),
    }


def _tunnel(connection: Connection, index: int) -> dict[str, Any]:
    tunnel_id, state, status = connection.tunnel(index)
    return {
        "TunnelId": tunnel_id,
        "TunnelIndex": index,
        "Role": "master" if index == 1 else "slave",
        "State": state,
        "Status": status,
        "CustomerGatewayId": f"cgw-{connection.id.partition('-')[2]}",
        "InternetIp": connection.customer_gateway_ip,
        "ZoneNo": f"{connection.region_id}-{'ab'[index - 1]}",
        "EnableDpd": "true",
        "EnableNatTraversal": "true",
    }


def connection_json(connection: Connection) -> dict[str, Any]:
    body: dict[str, Any] = {
        "VpnConnectionId": connection.id,
        "Name": connection.name,
        "VpnGatewayId": connection.gateway_id,
        "CustomerGatewayId": f"cgw-{connection.id.partition('-')[2]}",
        "LocalSubnet": connection.local_subnet,
        "RemoteSubnet": connection.remote_subnet,
        "CreateTime": connection.create_time_ms,
        "EffectImmediately": False,
        "State": connection.state,
        "Status": connection.status,
        "AttachType": connection.attach_type,
        "NetworkType": "public",
        "EnableTunnelsBgp": False,
        "VpnBgpConfig": {"Status": connection.bgp_status},
        "VcoHealthCheck": {
            "Enable": "true",
            "Sip": connection.local_ip,
            "Dip": connection.remote_ip,
            "Status": connection.health_check_status,
        },
        "TunnelOptionsSpecification": {
            "TunnelOptions": [_tunnel(connection, 1), _tunnel(connection, 2)]
        },
        "Tag": _tags(connection.tags),
    }
    if connection.transit_router_id:
        body["TransitRouterId"] = connection.transit_router_id
        body["TransitRouterName"] = connection.transit_router_id
    return body


def _paged(
    call: Call,
    matches: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    outer: str,
    inner: str,
) -> dict[str, Any]:
    page = call.page()
    start = (page.number - 1) * page.size
    return {
        "TotalCount": len(matches),
        "PageNumber": page.number,
        "PageSize": page.size,
        outer: {inner: [render(item) for item in matches[start : start + page.size]]},
    }


def describe_vpn_gateways(call: Call) -> dict[str, Any]:
    filters = {name: value for name in GATEWAY_FILTERS if (value := call.param(name)) is not None}
    matches = call.state.fleet.find_gateways(call.region_id, filters, call.tags())
    return _paged(call, matches, gateway_json, "VpnGateways", "VpnGateway")


def describe_vpn_connections(call: Call) -> dict[str, Any]:
    fleet = call.state.fleet
    region = call.region_id
    connection_id = call.param("VpnConnectionId")
    gateway_id = call.param("VpnGatewayId")
    matches: Sequence[Connection]
    if connection_id is not None:
        found = fleet.connection(connection_id)
        matches = [found] if found is not None and found.region_id == region else []
    elif gateway_id is not None:
        gateway = fleet.gateway(gateway_id)
        matches = gateway.connections if gateway is not None and gateway.region_id == region else []
    else:
        matches = fleet.connections_in(region)
    if gateway_id is not None:
        matches = [c for c in matches if c.gateway_id == gateway_id]
    tags = call.tags()
    if tags:
        matches = [
            c
            for c in matches
            if all(k in c.tags and (v is None or c.tags[k] == v) for k, v in tags)
        ]
    return _paged(
        call,
        matches,
        lambda connection: connection_json(connection.settle(call.now)),
        "VpnConnections",
        "VpnConnection",
    )


ACTIONS: dict[str, Handler] = {
    "DescribeVpnGateways": describe_vpn_gateways,
    "DescribeVpnConnections": describe_vpn_connections,
}
