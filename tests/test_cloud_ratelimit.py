"""Rate budgets: 80 % of the published limits, evenly spaced slots, throttling back-off.

Time is virtual: sleepers wake in order of their deadlines and the clock jumps to each.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import Any

import pytest

from exporter.cloud.ratelimit import MIN_FACTOR, RateBudget, RateBudgets


class VirtualTime:
    """A clock and sleep for many concurrent sleepers: `run` advances time to the earliest
    deadline whenever every task is waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    async def run(self, *work: Awaitable[Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(item) for item in work]
        while not all(task.done() for task in tasks):
            for _ in range(10):
                await asyncio.sleep(0)
            if self._sleepers and not all(task.done() for task in tasks):
                when, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, when)
                future.set_result(None)
        return [task.result() for task in tasks]

    async def stamp(self, budget: RateBudget) -> float:
        """Acquire a slot and return the virtual time it was granted at."""
        await budget.acquire()
        return self.now


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def budget(vt: VirtualTime, calls: float = 60, period: float = 60.0, burst: int = 1) -> RateBudget:
    return RateBudget(calls, period, burst=burst, clock=vt.clock, sleep=vt.sleep)


def test_default_budget_is_80_percent_of_the_published_limit() -> None:
    budgets = RateBudgets()

    assert budgets.limit("GetVpnGatewayDiagnoseResult") == (96.0, 60.0)
    assert budgets.limit("DescribeVpnConnections") == (480.0, 60.0)
    assert budgets.limit("DeleteVcoRouteEntry") == (48.0, 60.0)
    assert budgets.rate_per_second("GetVpnGatewayDiagnoseResult") == pytest.approx(1.6)


def test_unpublished_limits_use_the_labelled_assumptions() -> None:
    budgets = RateBudgets()

    assert budgets.limit("DiagnoseVpnGateway") == (48.0, 60.0)
    assert budgets.limit("CreateVcoRouteEntry") == (48.0, 60.0)
    assert budgets.limit("DescribeVpnGateways") == (480.0, 60.0)
    assert budgets.limit("SomeFutureAction") == (48.0, 60.0)


def test_an_override_is_the_budget_itself_and_shards_divide_every_budget() -> None:
    budgets = RateBudgets({"GetVpnGatewayDiagnoseResult": (90, 60.0)}, shards=3)

    assert budgets.limit("GetVpnGatewayDiagnoseResult") == (30.0, 60.0)
    assert budgets.limit("DescribeVpnConnections") == (160.0, 60.0)
    assert budgets.rate_per_second("GetVpnGatewayDiagnoseResult") == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"overrides": {"GetVpnGatewayDiagnoseResult": (0, 60.0)}},
        {"overrides": {"GetVpnGatewayDiagnoseResult": (10, 0.0)}},
        {"share": 0.0},
        {"share": 1.5},
        {"shards": 0},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateBudgets(**kwargs)


def test_budgets_are_kept_per_profile_region_and_action() -> None:
    budgets = RateBudgets()
    first = budgets.get("prod", "cn-hangzhou", "GetVpnGatewayDiagnoseResult")

    assert budgets.get("prod", "cn-hangzhou", "GetVpnGatewayDiagnoseResult") is first
    assert budgets.get("dev", "cn-hangzhou", "GetVpnGatewayDiagnoseResult") is not first
    assert budgets.get("prod", "cn-shanghai", "GetVpnGatewayDiagnoseResult") is not first
    assert budgets.get("prod", "cn-hangzhou", "DescribeVpnGateways") is not first


async def test_the_first_call_goes_at_once_and_the_next_ones_are_evenly_spaced(
    vt: VirtualTime,
) -> None:
    spaced = budget(vt, calls=96, period=60.0)

    times = [(await vt.run(vt.stamp(spaced)))[0] for _ in range(5)]

    assert times == pytest.approx([0.0, 0.625, 1.25, 1.875, 2.5])


async def test_concurrent_callers_get_distinct_slots_without_a_burst(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)

    times = await vt.run(*(vt.stamp(spaced) for _ in range(6)))

    assert sorted(times) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


async def test_an_idle_spell_earns_no_burst_by_default(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)
    await vt.run(vt.stamp(spaced))
    vt.now = 100.0

    times = await vt.run(*(vt.stamp(spaced) for _ in range(3)))

    assert sorted(times) == pytest.approx([100.0, 101.0, 102.0])


async def test_a_burst_allowance_lets_that_many_through_after_an_idle_spell(
    vt: VirtualTime,
) -> None:
    bursty = budget(vt, calls=60, period=60.0, burst=3)
    vt.now = 100.0

    times = await vt.run(*(vt.stamp(bursty) for _ in range(5)))

    assert sorted(times) == pytest.approx([100.0, 100.0, 100.0, 101.0, 102.0])


async def test_a_minute_of_calls_stays_within_the_budget(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=96, period=60.0)

    times = await vt.run(*(vt.stamp(spaced) for _ in range(200)))

    window_starts = sorted(times)
    for start in window_starts:
        assert sum(start <= t < start + 60.0 for t in times) <= 96


async def test_throttling_halves_the_rate_and_holds_slots_for_retry_after(
    vt: VirtualTime,
) -> None:
    spaced = budget(vt, calls=60, period=60.0)
    await vt.run(vt.stamp(spaced))

    spaced.throttled(retry_after=5.0)

    assert spaced.rate_per_second == pytest.approx(0.5)
    times = await vt.run(*(vt.stamp(spaced) for _ in range(3)))
    assert sorted(times) == pytest.approx([5.0, 7.0, 9.0])


async def test_answers_throttled_together_slow_the_rate_once(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)

    for _ in range(5):
        spaced.throttled()

    assert spaced.rate_per_second == pytest.approx(0.5)


def test_repeated_throttling_never_stops_a_budget(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)

    for _ in range(20):
        spaced.throttled()
        vt.now += 1000.0

    assert spaced.rate_per_second == pytest.approx(MIN_FACTOR)


def test_clean_answers_restore_the_full_rate_within_about_a_period(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)
    spaced.throttled()

    for _ in range(30):
        spaced.succeeded()
    assert spaced.rate_per_second == pytest.approx(1.0)
    spaced.succeeded()
    assert spaced.rate_per_second == pytest.approx(1.0)


async def test_a_caller_waiting_across_a_throttling_answer_queues_again(vt: VirtualTime) -> None:
    spaced = budget(vt, calls=60, period=60.0)
    await vt.run(vt.stamp(spaced))
    waiting = asyncio.ensure_future(vt.stamp(spaced))  # holds the slot at 1.0
    for _ in range(10):
        await asyncio.sleep(0)

    vt.now = 0.5
    spaced.throttled(retry_after=10.0)

    [granted] = await vt.run(waiting)
    assert granted == pytest.approx(10.5)
