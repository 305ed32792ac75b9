"""Poll cycles: when polls start, how they are spread, and that they never overlap."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from exporter.collect.planner import TargetPlan
from exporter.collect.poller import Poller
from exporter.collect.scheduler import PollScheduler, effective_interval
from exporter.exposition.fleet import Fleet
from exporter.exposition.render import Exposition
from exporter.telemetry.self_metrics import SelfMetrics
from tests.fakes import FakeClock


class RecordingSource:
    """Answers every gateway with 'no diagnosis yet' and notes when it was asked."""

    def __init__(self, clock: FakeClock, hold: asyncio.Event | None = None) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []
        self.hold = hold

    async def get_vpn_gateway_diagnose_result(
        self,
        *,
        vpn_gateway_id: str | None = None,
        diagnose_id: str | None = None,
        on_launch: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        assert vpn_gateway_id is not None
        if on_launch is not None:
            on_launch()
        self.calls.append((vpn_gateway_id, self.clock.monotonic()))
        if self.hold is not None:
            await self.hold.wait()
        from exporter.cloud.errors import CloudError

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
