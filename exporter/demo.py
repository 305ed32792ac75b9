"""`--demo`: the exporter polling the built-in simulator's fixed demo fleet.

The simulator runs in the exporter's own event loop on a free loopback port, with the
demo key pair; the config is an ordinary one pointing the API endpoint at it, so the demo
exercises exactly the code a real deployment runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from exporter.config.model import Config
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, demo_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator

DEMO_INTERVAL = "10s"


@contextlib.asynccontextmanager
async def running_demo_simulator() -> AsyncIterator[str]:
    """Run the simulator with the demo fleet; yield its endpoint URL."""
    async with SimulatorServer(Simulator(demo_scenario())) as server:
        yield server.url


def demo_config(endpoint: str) -> Config:
    """A config polling every gateway of the demo fleet through `endpoint`."""
    scenario = demo_scenario()
    regions: dict[str, list[str]] = {}
    for gateway in scenario.gateways:
        regions.setdefault(gateway.region_id, []).append(gateway.id)
    return Config.model_validate(
        {
            "credentials": {
                "default": {
                    "source": "access_key",
                    "access_key_id": DEMO_ACCESS_KEY_ID,
                    "access_key_secret": DEMO_ACCESS_KEY_SECRET,
                }
            },
            "poll": {"interval": DEMO_INTERVAL},
            "api": {"endpoint": endpoint, "timeout": "5s"},
            "targets": [
                {"region_id": region, "gateways": gateways} for region, gateways in regions.items()
            ],
        }
    )
