"""The fault matrix (`tests/fault_matrix.py`), one test per row, each asserting:

- the process stays up: the listener runs, `/healthz` says ok, nothing escaped;
- `/metrics` keeps answering while the fault is on (that answers come, with a generous
  timeout; latency is the runner's to measure);
- only the affected gateways show the failure (`poll_success 0`, or the row's own sign for
  answers the API documents), every other gateway polls fine;
- the right counters move, by exactly the attempts made (retries included);
- the other gateways' data is untouched, and the affected ones keep their last good data;
- one poll cycle (one interval) after the fault clears, every gateway is back as before;
- the log says what happened once per incident: one line per affected gateway for two
  failing cycles of retried polls, one when it recovers, none about the others.

The exporter runs in this event loop on a fake clock; each test drives poll cycles itself
(the configured interval is an hour), so nothing waits for time to pass. The simulator
serves real HTTP on loopback, with its own clock stopped so diagnoses do not drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from exporter.app import Exporter, ListenSettings
from exporter.config.model import Config
from exporter.simulator.clock import ManualClock
from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.fakes import FakeClock
from tests.fault_matrix import (
    ACTION,
    GATEWAYS,
    MAX_RETRIES,
    ROWS,
    VICTIM,
    Row,
    config_data,
    gateway_lines,
    poll_success,
    samples,
    scenario_data,
    total,
)

BOUND = 20.0
"""A generous bound on anything the test waits for: proves it happens, not how fast."""


@dataclass
class Matrix:
    simulator: Simulator
    server: SimulatorServer
    exporter: Exporter

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.listener.port}"

    async def scrape(self) -> str:
        async with httpx.AsyncClient(timeout=BOUND) as http:
            response = await http.get(f"{self.url}/metrics")
        assert response.status_code == 200
        return response.text

    async def cycle(self) -> None:
        """One poll cycle of every target, waited for until every gateway has an answer."""
        records = self.exporter.fleet.records
        before = {key: record.last_poll for key, record in records.items()}
        for plan in self.exporter.scheduler.plans:
            await self.exporter.scheduler.run_cycle(plan)
        await until(lambda: all(records[key].last_poll is not poll for key, poll in before.items()))

    async def endpoint_down(self) -> None:
        await self.server.stop()

    async def endpoint_up(self) -> None:
        self.server = SimulatorServer(self.simulator, port=self.server.port)
        await self.server.start()


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "not within the generous bound"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def matrix() -> AsyncIterator[Matrix]:
    simulator = Simulator(
        Scenario.model_validate(scenario_data()), clock=ManualClock(), throttling=False
    )
    server = SimulatorServer(simulator)
    await server.start()
    # An hour's interval: cycles run when the test says; nothing goes stale meanwhile.
    config = Config.model_validate(config_data(server.url, "1h", stale_after="30d"))
    exporter = Exporter(
        config,
        listen=ListenSettings(address="127.0.0.1:0"),
        clock=FakeClock(time.time()),
        metrics=SelfMetrics(),
    )
    rig = Matrix(simulator, server, exporter)
    await exporter.start()
    try:
        records = exporter.fleet.records
        await until(lambda: all(r.last_poll and r.last_poll.success for r in records.values()))
        yield rig
    finally:
        await exporter.stop()
        await rig.server.stop()


async def scraping_meanwhile(rig: Matrix, work: Callable[[], Awaitable[None]]) -> list[int]:
    """Run `work` while scraping `/metrics` over and over; the statuses of the scrapes."""
    statuses: list[int] = []
    done = asyncio.Event()

    async def scrape_until_done() -> None:
        async with httpx.AsyncClient(timeout=BOUND) as http:
            while True:
                statuses.append((await http.get(f"{rig.url}/metrics")).status_code)
                if done.is_set():
                    return
                await asyncio.sleep(0)

    scraper = asyncio.create_task(scrape_until_done())
    try:
        await work()
    finally:
        done.set()
        await scraper
    return statuses


def warnings_about(records: list[logging.LogRecord], gateway: str) -> list[str]:
    return [
        record.getMessage()
        for record in records
        if record.levelno >= logging.WARNING
        and getattr(record, "fields", {}).get("vpn_gateway_id") == gateway
    ]


def recoveries_of(records: list[logging.LogRecord], gateway: str) -> int:
    return sum(
        1
        for record in records
        if record.getMessage() == "poll recovered"
        and getattr(record, "fields", {}).get("vpn_gateway_id") == gateway
    )


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_fault(row: Row, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="exporter")
    async with matrix() as rig:
        before = await rig.scrape()
        assert all(poll_success(before)[g] == 1 for g in GATEWAYS)
        baseline = {g: gateway_lines(before, g) for g in GATEWAYS}
        requests_before = total(before, "aliyun_vpn_api_requests_total", action=ACTION)
        failures_before = total(before, "aliyun_vpn_api_request_failures_total", action=ACTION)
        parse_errors_before = total(before, "aliyun_vpn_description_parse_errors_total")

        # --- the fault: two poll cycles under it, scraped all the while ----------------
        caplog.clear()
        if row.endpoint_down:
            await rig.endpoint_down()
        for fault in row.faults():
            rig.simulator.faults.add(fault)
        logged: list[list[logging.LogRecord]] = []

        async def two_cycles() -> None:
            for _ in range(2):
                await rig.cycle()
                logged.append(list(caplog.records))
                caplog.clear()

        statuses = await scraping_meanwhile(rig, two_cycles)
        assert statuses, "no scrape was answered during the fault"
        assert set(statuses) == {200}

        during = await rig.scrape()
        success = poll_success(during)
        assert {g for g in GATEWAYS if success[g] != 1} == (
            set(row.affected) if row.poll_success == 0 else set()
        )
        attempts = 2 * len(row.affected) * ((1 + MAX_RETRIES) if row.retried else 1)
        requests = total(during, "aliyun_vpn_api_requests_total", action=ACTION) - requests_before
        failures = (
            total(during, "aliyun_vpn_api_request_failures_total", action=ACTION) - failures_before
        )
        polls = 2 * len(GATEWAYS)
        if row.code is not None:
            assert failures == attempts
            assert (
                total(during, "aliyun_vpn_api_request_failures_total", action=ACTION, code=row.code)
                - total(
                    before, "aliyun_vpn_api_request_failures_total", action=ACTION, code=row.code
                )
                == attempts
            )
            assert requests == polls - 2 * len(row.affected) + attempts
        else:
            assert failures == 0
            assert requests == polls
        parse_errors = total(during, "aliyun_vpn_description_parse_errors_total")
        assert (parse_errors > parse_errors_before) == row.parse_errors
        if row.running:
            assert samples(during, "aliyun_vpn_diagnose_running", vpn_gateway_id=VICTIM)[0][1] == 1
        for gateway in GATEWAYS:
            if gateway not in row.affected or not (row.parse_errors or row.running):
                # Untouched, or the affected gateway's last good data kept (not stale yet).
                assert gateway_lines(during, gateway) == baseline[gateway], gateway

        first, second = logged
        for gateway in GATEWAYS:
            said = warnings_about(first, gateway)
            if gateway in row.affected and row.log is not None:
                assert said and all(line.startswith(row.log) for line in said), said
                if row.code is not None:
                    assert len(said) == 1, said
            else:
                assert said == [], gateway
            assert warnings_about(second, gateway) == [], gateway

        # --- the process is still up ------------------------------------------------------
        assert rig.exporter.listener.running
        async with httpx.AsyncClient(timeout=BOUND) as http:
            assert (await http.get(f"{rig.url}/healthz")).status_code == 200

        # --- recovery: the fault clears, one cycle later all is as before ----------------
        rig.simulator.faults.clear()
        if row.endpoint_down:
            await rig.endpoint_up()
        caplog.clear()
        await rig.cycle()
        after = await rig.scrape()
        assert all(poll_success(after)[g] == 1 for g in GATEWAYS)
        for gateway in GATEWAYS:
            assert gateway_lines(after, gateway) == baseline[gateway], gateway
            recovered = recoveries_of(caplog.records, gateway)
            assert recovered == (1 if gateway in row.affected and row.code else 0), gateway
