"""Child: the simulator for the budget benchmark, enforcing the published limits on a
compressed clock, with its request journal readable over HTTP.

`python -m benchmarks.budget_sim --regions big,small1,… --gateways 1000,50,… --time-scale 10`

Time compression: the simulator's throttling window (60 s in the API) is divided by
`--time-scale`, and the published limits are kept, so GetVpnGatewayDiagnoseResult allows
120 calls per 6 s at scale 10: the same limit, ten times faster. Everything else is the
product's simulator (`exporter.simulator`), served by its own `SimulatorServer`.

`GET /_bench/journal` lists every GetVpnGatewayDiagnoseResult request as
`[time, region, gateway, code]` (code null on success).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from starlette.types import Receive, Scope, Send

from benchmarks.procs import announce
from exporter.simulator import throttle
from exporter.simulator.generator import generated_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator

ACTION = "GetVpnGatewayDiagnoseResult"
PER_GENERATOR_REGION = 50
"""The generator deals gateways round robin over its region list; with 50 gateways per
entry, a region listed n times gets n x 50 gateways."""


def generator_regions(gateways: dict[str, int]) -> list[str]:
    """The generator's region list giving each region its number of gateways."""
    listed: list[str] = []
    for region, count in gateways.items():
        if count % PER_GENERATOR_REGION:
            raise ValueError(f"{region}: gateways must be a multiple of {PER_GENERATOR_REGION}")
        listed += [region] * (count // PER_GENERATOR_REGION)
    return listed


def generated_ids(listed: list[str], total: int) -> dict[str, list[str]]:
    """Gateway IDs per region, as the generator deals them over `listed`."""
    by_region: dict[str, list[str]] = {}
    for index in range(total):
        by_region.setdefault(listed[index % len(listed)], []).append(f"vpn-gen{index:07d}")
    return by_region


class JournalApp:
    """The simulator's app, plus `/_bench/journal`."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.inner = simulator.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/journal":
            rows: list[list[Any]] = [
                [r.time, r.params.get("RegionId"), r.params.get("VpnGatewayId"), r.code]
                for r in self.simulator.requests
                if r.action == ACTION
            ]
            body = json.dumps(rows).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.inner(scope, receive, send)


async def main(args: argparse.Namespace) -> None:
    throttle.WINDOW_SECONDS = throttle.WINDOW_SECONDS / args.time_scale
    listed = args.listed.split(",")
    simulator = Simulator(
        generated_scenario(args.total, listed), throttling=True, journal_size=args.journal
    )
    simulator.app = JournalApp(simulator)  # type: ignore[assignment]
    async with SimulatorServer(simulator) as server:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        announce(port=server.port, window_seconds=throttle.WINDOW_SECONDS)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listed", required=True, help="the generator's region list")
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--time-scale", type=float, default=10.0)
    parser.add_argument("--journal", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
