"""Connection status: what DescribeVpnConnections says about every IPsec connection.

The quick diagnosis covers one connection at a time; DescribeVpnConnections (600 calls a
minute, 50 connections a page) covers them all: the connection's state, its IPsec
negotiation status, its tunnels' (dual-tunnel connections), BGP and health-check status.
The answer is read into typed values here; past this module nothing handles its JSON.

Status values are exported as the API spells them. The IPsec negotiation status has four
documented values and is exported as a state set (all four present, one at 1); the other
statuses' values are not documented, so only the current value is exported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from exporter.cloud.paging import (
    MAX_PAGE_SIZE,
    Lookup,
    Page,
    all_pages,
    envelope,
    lookup,
    text,
    word,
)
from exporter.model.connection import Tunnel, VpnConnection

ACTION = "DescribeVpnConnections"


class ConnectionSource(Protocol):
    """The part of the VPC client connection listing needs."""

    async def describe_vpn_connections(
        self,
        page_number: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        *,
        vpn_gateway_id: str | None = None,
        vpn_connection_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...


def parse_connections(payload: Mapping[str, Any]) -> Page[VpnConnection]:
    """One page of DescribeVpnConnections; connections without both IDs are skipped
    (a connection attached to no VPN gateway has no gateway to be reported under)."""
    total, entries = envelope(ACTION, payload, "VpnConnections", "VpnConnection")
    connections = []
    for entry in entries:
        connection_id = text(entry.get("VpnConnectionId"))
        gateway_id = text(entry.get("VpnGatewayId"))
        if connection_id is None or gateway_id is None:
            continue
        connections.append(
            VpnConnection(
                vpn_connection_id=connection_id,
                vpn_gateway_id=gateway_id,
                name=text(entry.get("Name")) or "",
                state=word(entry.get("State")),
                status=word(entry.get("Status")),
                attach_type=word(entry.get("AttachType")),
                transit_router_id=text(entry.get("TransitRouterId")),
                bgp_status=_nested_status(entry.get("VpnBgpConfig")),
                health_check_status=_health_check_status(entry.get("VcoHealthCheck")),
                tunnels=_tunnels(entry.get("TunnelOptionsSpecification")),
            )
        )
    return Page(total, connections)


def _nested_status(value: object) -> str | None:
    return word(value.get("Status")) if isinstance(value, Mapping) else None


def _health_check_status(value: object) -> str | None:
    if not isinstance(value, Mapping):
        return None
    if str(value.get("Enable", "")).strip().lower() == "false":
        return None
    return word(value.get("Status"))


def _tunnels(value: object) -> tuple[Tunnel, ...]:
    entries = value.get("TunnelOptions") if isinstance(value, Mapping) else value
    if not isinstance(entries, list):
        return ()
    tunnels = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        tunnel_id = text(entry.get("TunnelId"))
        if tunnel_id is None or tunnel_id in seen:
            continue
        seen.add(tunnel_id)
        tunnels.append(
            Tunnel(
                tunnel_id=tunnel_id,
                role=word(entry.get("Role")),
                state=word(entry.get("State")),
                status=word(entry.get("Status")),
            )
        )
    return tuple(tunnels)


async def list_connections(
    client: ConnectionSource, gateway_ids: Sequence[str]
) -> Lookup[VpnConnection]:
    """The connections of each gateway in `gateway_ids`, by whichever costs fewer calls:
    one paginated listing per gateway, or the region's listing."""

    async def region_page(number: int) -> Page[VpnConnection]:
        return parse_connections(await client.describe_vpn_connections(number, MAX_PAGE_SIZE))

    async def each(gateway_id: str) -> list[VpnConnection]:
        async def page(number: int) -> Page[VpnConnection]:
            return parse_connections(
                await client.describe_vpn_connections(
                    number, MAX_PAGE_SIZE, vpn_gateway_id=gateway_id
                )
            )

        return [c for c in await all_pages(page) if c.vpn_gateway_id == gateway_id]

    return await lookup(
        gateway_ids,
        region_page=region_page,
        each=each,
        key_of=lambda connection: connection.vpn_gateway_id,
    )
