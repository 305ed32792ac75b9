"""What the admin API answers on success (its OpenAPI schemas come from these models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from exporter.admin.service import CloudRoute


class Route(BaseModel):
    """A destination-based route of an IPsec connection."""

    route_dest: str
    next_hop: str
    weight: int
    state: str | None = Field(description="As the cloud reports it, e.g. published.")
    route_entry_type: str | None = None
    source: str | None = None
    description: str | None = None
    overlay_mode: str | None = None
    create_time: datetime | None = None

    @classmethod
    def from_cloud(cls, route: CloudRoute) -> Route:
        return cls(
            route_dest=route.route_dest,
            next_hop=route.next_hop,
            weight=route.weight,
            state=route.state,
            route_entry_type=route.route_entry_type,
            source=route.source,
            description=route.description,
            overlay_mode=route.overlay_mode,
            create_time=route.create_time,
        )


class RouteCreated(BaseModel):
    """201: the connection has settled and lists the route. 202: the cloud accepted the
    route and is still creating it; follow `Location` to see its state."""

    status: Literal["created", "pending"]
    region_id: str
    vpn_connection_id: str
    route: Route
    request_id: str | None = Field(description="RequestId of the CreateVcoRouteEntry call.")
    idempotency_key: str = Field(
        description="The ClientToken used: send it as Idempotency-Key to retry safely."
    )


class DryRunResult(BaseModel):
    """200: the cloud checked the request (DryRun) and would create this route."""

    dry_run: Literal[True] = True
    region_id: str
    vpn_connection_id: str
    route: Route
    request_id: str | None


class RouteList(BaseModel):
    """Every route of a connection, and the connection's state (`updating` while a change
    is being applied, `attached` once it is done)."""

    region_id: str
    vpn_connection_id: str
    connection_state: str | None
    total_count: int
    routes: list[Route]
