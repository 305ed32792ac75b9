"""An IPsec connection and its tunnels as DescribeVpnConnections reports them."""

from __future__ import annotations

from dataclasses import dataclass

IPSEC_STATUSES = (
    "ike_sa_not_established",
    "ike_sa_established",
    "ipsec_sa_not_established",
    "ipsec_sa_established",
)
"""The documented values of a connection's (and a tunnel's) `Status`."""


@dataclass(frozen=True, slots=True)
class Tunnel:
    """One tunnel of a dual-tunnel connection (`TunnelOptionsSpecification.TunnelOptions`)."""

    tunnel_id: str
    role: str | None
    """`master` or `slave`."""
    state: str | None
    status: str | None
    """IPsec negotiation status, one of `IPSEC_STATUSES` as documented."""


@dataclass(frozen=True, slots=True)
class VpnConnection:
    """One IPsec connection of a gateway."""

    vpn_connection_id: str
    vpn_gateway_id: str
    name: str
    state: str | None
    """`State`: active, attached, updating, attaching, detaching, init, ..."""
    status: str | None
    """`Status`: the IPsec negotiation status (see `IPSEC_STATUSES`)."""
    attach_type: str | None
    transit_router_id: str | None
    bgp_status: str | None
    """`VpnBgpConfig.Status`, when the connection reports one."""
    health_check_status: str | None
    """`VcoHealthCheck.Status`, unless the health check is disabled."""
    tunnels: tuple[Tunnel, ...] = ()
