"""Poll cycles: when polls start, how they are spread, and that they never overlap."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.errors import CloudError
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.collect.planner import TargetPlan
from exporter.collect.poller import Poller
from exporter.collect.scheduler import PollScheduler, effective_interval
from exporter.exposition.fleet import Fleet
from exporter.exposition.render import Exposition
from exporter.simulator.generator import generated_scenario
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.exporter_rig import samples
from tests.fakes import FakeClock, ScaledClock

ACTION = "GetVpnGatewayDiagnoseResult"


class RecordingSource:
    """Answers every gateway with 'no diagnosis yet' and notes when it was asked."""

    def __init__(self, clock: FakeClock, hold: asyncio.Event | None = None) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []
        self.hold = hold

    def launched(self, vpn_gateway_id: str, on_launch: Callable[[], None] | None) -> None:
        """What the client does when a call's first attempt goes out: tell the caller,
        and (here) note when."""
        if on_launch is not None:
            on_launch()
        self.calls.append((vpn_gateway_id, self.clock.monotonic()))

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        assert vpn_gateway_id is not None
        self.launched(vpn_gateway_id, on_launch)
        if self.hold is not None:
            await self.hold.wait()
        raise CloudError(
            "GetVpnGatewayDiagnoseResult",
            "no diagnoses",
            status=404,
            code="InvalidVpnGatewayId.NotFound",
        )


def make(
    clock: FakeClock, source: RecordingSource, gateways: int, interval: float
) -> tuple[PollScheduler, TargetPlan]:
    fleet = Fleet(Exposition())
    plan = TargetPlan(
        name="default/cn-hangzhou",
        region_id="cn-hangzhou",
        gateways=[f"vpn-{i}" for i in range(gateways)],
        client=source,
        interval=interval,
        effective_interval=interval,
    )
    scheduler = PollScheduler([plan], Poller(fleet, SelfMetrics(), clock), fleet, clock)
    fleet.configure_target(plan.record(), plan.keys)
    return scheduler, plan


async def drain() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_cycle_spreads_polls_evenly_over_the_interval() -> None:
    clock = FakeClock()
    source = RecordingSource(clock)
    scheduler, plan = make(clock, source, gateways=4, interval=60.0)
    await scheduler.run_cycle(plan)  # the first cycle runs at the budget's pace
    await drain()
    source.calls.clear()
    start = clock.monotonic()
    await scheduler.run_cycle(plan)
    await drain()
    offsets = [at - start for _, at in source.calls]
    assert [g for g, _ in source.calls] == ["vpn-0", "vpn-1", "vpn-2", "vpn-3"]
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps == pytest.approx([15.0, 15.0, 15.0])
    assert 0 <= offsets[0] < 15.0
    assert offsets[-1] < 60.0, "the cycle must end before the next one is due"


async def test_gateway_with_poll_in_flight_is_not_polled_again() -> None:
    clock = FakeClock()
    hold = asyncio.Event()
    source = RecordingSource(clock, hold)
    scheduler, plan = make(clock, source, gateways=1, interval=60.0)
    await scheduler.run_cycle(plan)
    await drain()
    await scheduler.run_cycle(plan)
    await drain()
    assert len(source.calls) == 1
    hold.set()
    await drain()
    await scheduler.run_cycle(plan)
    await drain()
    assert len(source.calls) == 2


async def test_first_cycle_starts_at_start_not_after_one_interval() -> None:
    clock = FakeClock()
    source = RecordingSource(clock)
    scheduler, _ = make(clock, source, gateways=1, interval=3600.0)
    scheduler.start()
    try:
        for _ in range(200):
            if source.calls:
                break
            await asyncio.sleep(0.01)
        assert source.calls, "the first poll must not wait for the interval"
    finally:
        await scheduler.stop()


async def test_first_cycle_runs_at_the_budget_pace_not_over_the_interval() -> None:
    clock = FakeClock()
    source = RecordingSource(clock)
    scheduler, plan = make(clock, source, gateways=4, interval=600.0)
    plan.startup_spacing = 0.5
    start = clock.monotonic()
    await scheduler.run_cycle(plan)
    await drain()
    assert [at - start for _, at in source.calls] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_effective_interval_stretches_when_budget_is_short() -> None:
    # 1,000 gateways at 96 calls/min cannot be polled every 5 minutes.
    assert effective_interval(300.0, 1000, 96 / 60) == pytest.approx(625.0)
    assert effective_interval(300.0, 50, 96 / 60) == 300.0


async def test_liveness_fails_when_cycles_stop_starting() -> None:
    clock = FakeClock()
    source = RecordingSource(clock)
    scheduler, plan = make(clock, source, gateways=1, interval=60.0)
    assert scheduler.liveness() == (False, "scheduler is not running")
    scheduler.start()
    try:
        await scheduler.run_cycle(plan)
        assert scheduler.liveness() == (True, "ok")
        clock.advance(2 * 60 + 61)
        ok, detail = scheduler.liveness()
        assert not ok
        assert "default/cn-hangzhou" in detail
    finally:
        await scheduler.stop()


async def test_stop_during_a_cycle_ends_it_without_a_job_error() -> None:
    clock = FakeClock()
    source = RecordingSource(clock)
    scheduler, plan = make(clock, source, gateways=3, interval=60.0)
    plan.startup_spacing = 10.0
    sleeping = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    clock.sleep = sleep_forever  # type: ignore[method-assign]
    cycle = asyncio.create_task(scheduler.run_cycle(plan))
    await sleeping.wait()
    await scheduler.stop()
    await cycle
    assert cycle.exception() is None
    assert [g for g, _ in source.calls] == ["vpn-0"]


async def test_launches_wait_while_the_most_polls_allowed_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("exporter.collect.scheduler.MAX_IN_FLIGHT", 3)
    clock = FakeClock()
    hold = asyncio.Event()
    source = RecordingSource(clock, hold)
    scheduler, plan = make(clock, source, gateways=5, interval=60.0)
    cycle = asyncio.create_task(scheduler.run_cycle(plan))
    await drain()
    assert [gateway for gateway, _ in source.calls] == ["vpn-0", "vpn-1", "vpn-2"]
    assert not cycle.done(), "the cycle waits for room instead of launching the rest"
    hold.set()
    await cycle
    await drain()
    assert [gateway for gateway, _ in source.calls] == [f"vpn-{i}" for i in range(5)]


# --- the pace achieved: aliyun_vpn_poll_effective_interval_seconds ---------------------


class HoldingOne(RecordingSource):
    """Answers at once, except for `held`, whose poll waits for `release`."""

    def __init__(self, clock: FakeClock, held: str) -> None:
        super().__init__(clock)
        self.held = held
        self.release = asyncio.Event()

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        if vpn_gateway_id == self.held:
            self.launched(vpn_gateway_id, on_launch)
            await self.release.wait()
            raise CloudError(
                "GetVpnGatewayDiagnoseResult", "x", status=503, code="ServiceUnavailable"
            )
        return await super().get_vpn_gateway_diagnose_result(
            vpn_gateway_id=vpn_gateway_id, on_launch=on_launch
        )


def gauge(scheduler: PollScheduler, name: str) -> float | None:
    text = b"".join(scheduler.fleet.exposition.chunks()).decode()
    found = samples(text, name, target="default/cn-hangzhou")
    return found[0][1] if found else None


async def test_the_effective_interval_is_the_longest_launch_gap_of_the_last_cycle() -> None:
    clock = FakeClock()
    source = HoldingOne(clock, held="vpn-0")
    scheduler, plan = make(clock, source, gateways=2, interval=60.0)

    async def cycle() -> None:
        due = clock.monotonic() + 60.0
        await scheduler.run_cycle(plan)
        await drain()
        clock.advance(due - clock.monotonic())

    await cycle()  # every gateway launched once: no gap measured yet, the plan shows
    assert gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds") == 60
    launched = gauge(scheduler, "aliyun_vpn_poll_last_launch_timestamp_seconds")
    assert launched is not None and launched <= clock.time()
    for _ in range(3):  # vpn-0's poll hangs: the cycle cannot complete, the value stays
        await cycle()
        assert gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds") == 60
    assert gauge(scheduler, "aliyun_vpn_poll_last_launch_timestamp_seconds") > launched  # type: ignore[operator]
    source.release.set()
    await drain()
    await cycle()  # vpn-0 launches again, four intervals after its previous launch
    effective = gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds")
    assert effective is not None and 3 * 60 < effective <= 5 * 60
    await cycle()
    await cycle()  # an ordinary cycle: every gateway launched about once a minute again
    effective = gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds")
    assert effective is not None and 0 < effective < 2 * 60


ITEM_FAMILIES = (
    "aliyun_vpn_diagnose_item_status",
    "aliyun_vpn_quota_used",
    "aliyun_vpn_probe_reachable",
    "aliyun_vpn_diagnose_available",
)


async def test_sixty_gateways_at_5s_against_120_per_minute_keep_every_series() -> None:
    """Issue 11's throttling case, on a clock 20 times faster than the real one: the
    budget is configured above the API's published 120 calls/min, so the simulator
    throttles; launches slow down to what the API allows, the effective interval says
    so (>= 30 s for 60 gateways), and no series ever disappears between polls."""
    clock = ScaledClock(20.0)
    simulator = Simulator(generated_scenario(60), clock=clock.time)  # published limits
    async with SimulatorServer(simulator) as server:
        http = make_http_client(timeout=5.0)
        metrics = SelfMetrics()
        budgets = RateBudgets({ACTION: (600.0, 60.0)}, clock=clock.monotonic, sleep=clock.sleep)
        client = VpcClient(
            http,
            StaticCredentialsProvider(
                "default", Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
            ),
            "cn-hangzhou",
            budgets=budgets,
            metrics=metrics,
            endpoint=server.url,
            retry=RetryPolicy(max_retries=4),
            clock=clock.monotonic,
            wall_clock=clock.time,
            sleep=clock.sleep,
        )
        fleet = Fleet(Exposition())
        plan = TargetPlan(
            name="default/cn-hangzhou",
            region_id="cn-hangzhou",
            gateways=[f"vpn-gen{i:07d}" for i in range(60)],
            client=client,
            interval=5.0,
            effective_interval=6.0,  # what the configured budget (600/min) would allow
            startup_spacing=0.1,
        )
        scheduler = PollScheduler([plan], Poller(fleet, metrics, clock), fleet, clock)
        fleet.configure_target(plan.record(), plan.keys)
        seen: set[tuple[str, str]] = set()
        vanished: list[tuple[str, str]] = []

        def check() -> None:
            text = b"".join(fleet.exposition.chunks()).decode()
            now = {
                (family, line.rsplit(" ", 1)[0])
                for family in ITEM_FAMILIES
                for line in text.splitlines()
                if line.startswith(family + "{")
            }
            vanished.extend(seen - now)
            seen.update(now)

        try:
            end = clock.monotonic() + 100.0
            while clock.monotonic() < end:
                due = clock.monotonic() + 5.0
                cycle = asyncio.create_task(scheduler.run_cycle(plan))
                while not cycle.done():
                    check()
                    await clock.sleep(0.5)
                await clock.sleep(due - clock.monotonic())
            check()
        finally:
            await scheduler.stop()
            await http.aclose()
    throttled = metrics.registry.get_sample_value(
        "aliyun_vpn_api_request_failures_total", {"action": ACTION, "code": "Throttling.User"}
    )
    assert throttled, "the budget outran the API: the simulator must have throttled"
    assert len({series for _, series in seen}) > 60, "the gateways' item series were exported"
    assert vanished == []
    effective = gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds")
    assert effective is not None and effective >= 30.0


async def test_stopping_twice_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    scheduler, _ = make(clock, RecordingSource(clock), gateways=1, interval=60.0)
    scheduler.start()
    await scheduler.stop()
    await scheduler.stop()  # Exporter.stop after stop_polling does so
    await asyncio.sleep(0.05)  # APScheduler's asyncio shutdown runs on a later loop turn
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class OneMissing(RecordingSource):
    """`missing` does not exist (InvalidVpnGatewayInstanceId.NotFound); the others have no
    diagnosis yet."""

    def __init__(self, clock: FakeClock, missing: str) -> None:
        super().__init__(clock)
        self.missing = missing

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        if vpn_gateway_id == self.missing:
            self.launched(vpn_gateway_id, on_launch)
            raise CloudError(ACTION, "x", status=404, code="InvalidVpnGatewayInstanceId.NotFound")
        return await super().get_vpn_gateway_diagnose_result(
            vpn_gateway_id=vpn_gateway_id, on_launch=on_launch
        )


async def test_a_gateway_backing_off_as_missing_does_not_hold_the_pace_back() -> None:
    clock = FakeClock()
    source = OneMissing(clock, missing="vpn-0")
    scheduler, plan = make(clock, source, gateways=2, interval=60.0)
    plan.effective_interval = 30.0  # the planned pace, shown until a cycle completes
    scheduler.fleet.configure_target(plan.record(), plan.keys)

    async def cycle() -> None:
        due = clock.monotonic() + 60.0
        await scheduler.run_cycle(plan)
        await drain()
        clock.advance(due - clock.monotonic())

    for _ in range(3):  # vpn-0 polled once, then skipped for an hour
        await cycle()
    assert [g for g, _ in source.calls].count("vpn-0") == 1
    effective = gauge(scheduler, "aliyun_vpn_poll_effective_interval_seconds")
    assert effective is not None and 30 < effective < 2 * 60, "cycles complete without vpn-0"
