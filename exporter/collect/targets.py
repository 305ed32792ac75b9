"""What each target covers as of its last refreshes: its listed and discovered gateways,
their descriptions and connections. The data the inventory keeps current and the poll
scheduler and scheduled diagnoses read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from exporter.cloud.actions import DiagnosisRunner
from exporter.cloud.connection_listing import ConnectionSource
from exporter.cloud.gateway_listing import GatewaySource
from exporter.config.model import Target
from exporter.exposition.records import GatewayKey
from exporter.model.connection import VpnConnection
from exporter.model.gateway import DiscoveredGateway


class InventoryClient(GatewaySource, ConnectionSource, DiagnosisRunner, Protocol):
    """The part of the VPC client a target's inventory, polls and diagnoses need."""

    @property
    def profile(self) -> str: ...


@dataclass(eq=False)
class TargetInventory:
    """What one target covers, as of its last refreshes."""

    target: Target
    client: InventoryClient
    """The target's `VpcClient`."""
    account: str
    listed: tuple[str, ...]
    """This shard's gateways the target lists by ID, in config order."""
    listed_elsewhere: frozenset[str] = frozenset()
    """Gateways other targets list by ID: never discovered here."""
    discovered: tuple[str, ...] = ()
    described: dict[str, DiscoveredGateway] = field(default_factory=dict)
    connections: dict[str, tuple[VpnConnection, ...]] = field(default_factory=dict)
    listings: dict[str, tuple[bool, float | None]] = field(default_factory=dict)
    """Per action: whether the last refresh succeeded, and when one last did."""
    connections_listed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a connection refresh has run after the first gateway refresh (whatever
    their outcomes): the target's connections are as known as they will be soon."""
    gateways_refreshed: bool = False
    conditions: dict[str, str] = field(default_factory=dict)
    refreshing: set[str] = field(default_factory=set)
    again: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def region_id(self) -> str:
        return self.target.region_id

    @property
    def gateways(self) -> tuple[str, ...]:
        """Listed gateways first, then discovered ones not listed."""
        listed = set(self.listed)
        return self.listed + tuple(g for g in self.discovered if g not in listed)

    def key(self, gateway_id: str) -> GatewayKey:
        return GatewayKey(self.name, self.region_id, gateway_id)

    def connection_count(self) -> int:
        return sum(len(self.connections.get(g, ())) for g in self.gateways)


def connections_of(inventory: TargetInventory) -> Sequence[tuple[str, VpnConnection]]:
    """(gateway ID, connection) of every known connection of the target's gateways."""
    return [
        (gateway_id, connection)
        for gateway_id in inventory.gateways
        for connection in inventory.connections.get(gateway_id, ())
    ]
