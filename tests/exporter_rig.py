"""A whole exporter against the simulator over real HTTP, for the fleet-feature tests.

`running(scenario, targets=..., **sections)` starts the simulator and an `Exporter` on
loopback and yields both; helpers read the exposition and wait (up to a generous 10 s,
never as a speed check) for the exporter's own jobs to get somewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.app import Exporter, ListenSettings
from exporter.collect.sharding import UNSHARDED, Shard
from exporter.config.model import Config
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    Scenario,
    parse_scenario,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics

DEMO_KEYS = {
    "source": "access_key",
    "access_key_id": DEMO_ACCESS_KEY_ID,
    "access_key_secret": DEMO_ACCESS_KEY_SECRET,
}


def scenario(gateways: Sequence[Mapping[str, Any]], **settings: Any) -> Scenario:
    """A scenario accepting the demo key pair, with the given gateway specs."""
    return parse_scenario(
        {
            "key_pairs": [
                {"access_key_id": DEMO_ACCESS_KEY_ID, "access_key_secret": DEMO_ACCESS_KEY_SECRET}
            ],
            "gateways": list(gateways),
            **settings,
        }
    )


def config(endpoint: str, targets: Sequence[Mapping[str, Any]], **sections: Any) -> Config:
    """A config polling through `endpoint` with the demo keys as the `default` profile."""
    data: dict[str, Any] = {
        "credentials": {"default": DEMO_KEYS},
        "poll": {"interval": "1h"},
        "api": {"endpoint": endpoint, "timeout": "5s", "max_retries": 1},
        "targets": list(targets),
    }
    for name, value in sections.items():
        if isinstance(value, Mapping) and isinstance(data.get(name), Mapping):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return Config.model_validate(data)


def configured(targets: Sequence[Mapping[str, Any]], **sections: Any) -> Callable[[str], Config]:
    """`config` for the simulator's endpoint, once it is known."""
    return lambda endpoint: config(endpoint, targets, **sections)


@dataclass
class Running:
    simulator: Simulator
    exporter: Exporter

    def text(self) -> str:
        return b"".join(self.exporter.exposition.chunks()).decode()

    async def scrape(self) -> str:
        """/metrics over HTTP: the exposition and the self-metrics."""
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{self.exporter.listener.port}/metrics", timeout=10
            )
        response.raise_for_status()
        return response.text

    def samples(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return samples(self.text(), name, **labels)

    def value(self, name: str, **labels: str) -> float | None:
        found = self.samples(name, **labels)
        assert len(found) <= 1, f"{name}{labels}: {len(found)} samples"
        return found[0][1] if found else None

    def polled(self) -> set[str]:
        """Gateways the exporter polls (holds a record for)."""
        return {key.vpn_gateway_id for key in self.exporter.fleet.records}

    def calls(self, action: str, **params: str) -> list[dict[str, str]]:
        """Parameters of the simulator's requests of `action` matching `params`."""
        return [
            request.params
            for request in self.simulator.requests
            if request.action == action
            and all(request.params.get(k) == v for k, v in params.items())
        ]


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        body, value = line.rsplit(" ", 1)
        pairs = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', body))
        if all(pairs.get(k) == v for k, v in labels.items()):
            found.append((pairs, float(value)))
    return found


@contextlib.asynccontextmanager
async def running(
    simulator: Simulator,
    make_config: Callable[[str], Config],
    *,
    shard: Shard = UNSHARDED,
    metrics: SelfMetrics | None = None,
) -> AsyncIterator[Running]:
    """The simulator on loopback and an exporter started against it."""
    async with SimulatorServer(simulator) as server:
        exporter = Exporter(
            make_config(server.url),
            listen=ListenSettings(address="127.0.0.1:0"),
            metrics=metrics or SelfMetrics(),
            shard=shard,
        )
        await exporter.start()
        try:
            yield Running(simulator, exporter)
        finally:
            await exporter.stop()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait until `predicate()` holds (a generous bound that only proves it happens)."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout:g} s")


async def refreshed(run: Running) -> None:
    """Wait until every target's gateways and connections were listed once."""
    targets = run.exporter.inventory.targets.values()
    await until(
        lambda: all(t.gateways_refreshed and t.connections_listed.is_set() for t in targets),
        "first gateway and connection refresh",
    )


async def polled_once(run: Running) -> None:
    """Wait until every polled gateway has been polled once."""
    await until(
        lambda: (
            bool(run.exporter.fleet.records)
            and all(r.last_poll is not None for r in run.exporter.fleet.records.values())
        ),
        "a poll of every gateway",
    )
