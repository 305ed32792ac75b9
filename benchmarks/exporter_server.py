"""Child: the real `Exporter` serving a generated fleet, loaded through its poll path.

`python -m benchmarks.exporter_server --gateways 10000 --regions 10`

The exporter is built from an ordinary `Config` (one target per region, the demo key
pair), and its metrics listener is the product's own (`Exporter.listener`, uvicorn). Its
scheduler is not started: the benchmark decides when results arrive, so that a scrape
can be hash-checked against the static copy of its own bytes, and a burst of updates
lands exactly before the scrape that must absorb it. Answers come from `benchmarks.feed`:
each target's inventory refreshes its gateways and their connections as it does at start
(DescribeVpnGateways, DescribeVpnConnections), then every gateway's result goes through
`Poller.poll`, the function a real poll ends in.

Commands (stdin, one JSON line each):
- `absorb {"count": N}`: N gateways (the next ones, round robin) get a new diagnosis; the
  answer holds the CPU time (`time.process_time`) spent absorbing them;
- `memory {}`: resident memory now and at peak.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.feed import FeedSource, GeneratedFleet, regions_of
from benchmarks.procs import announce, own_memory, serve_commands
from exporter.app import Exporter, ListenSettings
from exporter.config.model import Config
from exporter.exposition.records import GatewayKey
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET

START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: the simulated time of the first results."""
STEP = 60.0
"""The simulator re-diagnoses every gateway each minute: one step is one new diagnosis."""


def fleet_config(by_region: dict[str, list[str]], endpoint: str) -> Config:
    """An ordinary config: one target per region, 5-minute interval."""
    return Config.model_validate(
        {
            "credentials": {
                "default": {
                    "source": "access_key",
                    "access_key_id": DEMO_ACCESS_KEY_ID,
                    "access_key_secret": DEMO_ACCESS_KEY_SECRET,
                }
            },
            "poll": {"interval": "5m"},
            "api": {"endpoint": endpoint},
            "targets": [
                {"region_id": region, "gateways": gateways}
                for region, gateways in by_region.items()
            ],
        }
    )


class Bench:
    """The exporter, its feed and the round-robin position of the next update."""

    def __init__(self, gateways: int, regions: int) -> None:
        self.generated = GeneratedFleet(gateways, regions_of(regions))
        config = fleet_config(self.generated.by_region, "http://127.0.0.1:9")
        self.exporter = Exporter(config, listen=ListenSettings(address="127.0.0.1:0"))
        self.keys: list[GatewayKey] = [
            key for plan in self.exporter.scheduler.plans for key in plan.keys
        ]
        self.sources: dict[str, FeedSource] = {}
        for inventory in self.exporter.inventory.targets.values():
            source = FeedSource(self.generated, inventory.region_id, START)
            inventory.client = source
            self.sources[inventory.region_id] = source
        self.step = 0
        self.next = 0

    async def start(self) -> dict[str, Any]:
        exporter = self.exporter
        for plan in exporter.scheduler.plans:
            exporter.fleet.configure_target(plan.record(), plan.keys, stale_after=plan.stale_after)
        await exporter.listener.start()
        cpu = time.process_time()
        for name in exporter.inventory.targets:
            await exporter.inventory.refresh_gateways(name)
            await exporter.inventory.refresh_connections(name)
        await exporter.inventory.stop()  # the connection refresh it asked for is done
        listed = time.process_time() - cpu
        loaded = await self.absorb(len(self.keys))
        loaded["listings_cpu"] = listed
        gc.collect()
        return {"port": exporter.listener.port, "load": loaded}

    async def absorb(self, count: int) -> dict[str, Any]:
        """Give `count` gateways a new diagnosis; CPU is measured around the polls only."""
        count = min(count, len(self.keys))
        keys = [self.keys[(self.next + i) % len(self.keys)] for i in range(count)]
        self.next = (self.next + count) % len(self.keys)
        self.step += 1  # every absorbed answer is a newer diagnosis than the last one
        now = START + self.step * STEP
        for source in self.sources.values():
            source.answers = {}
        for key in keys:
            self.sources[key.region_id].answers[key.vpn_gateway_id] = self.generated.answer(
                key.region_id, key.vpn_gateway_id, now
            )
        poll = self.exporter.poller.poll
        sources = [self.sources[key.region_id] for key in keys]
        wall = time.perf_counter()
        cpu = time.process_time()
        for key, source in zip(keys, sources, strict=True):
            await poll(key, source)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        return {"count": count, "cpu": cpu, "wall": wall}


async def main(args: argparse.Namespace) -> None:
    bench = Bench(args.gateways, args.regions)
    started = await bench.start()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    handlers: dict[str, Callable[..., Any]] = {"absorb": bench.absorb, "memory": own_memory}

    def commands() -> None:
        try:
            serve_commands(handlers, loop)
        finally:
            loop.call_soon_threadsafe(done.set_result, None)

    threading.Thread(target=commands, daemon=True).start()
    announce(**started, **own_memory())
    await done
    await bench.exporter.listener.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=10)
    asyncio.run(main(parser.parse_args()))
