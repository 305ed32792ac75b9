"""Rate budgets: how often the exporter may call each API action, per account and region.

The VPC API throttles per (account, region, action) over 60-second windows. A budget hands
out evenly spaced slots (a GCRA "next slot" scheduler), so calls never burst at the top of an
interval, and every HTTP attempt (retries included) takes one, because the quota counts
attempts. A throttling answer halves the rate until clean answers restore it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from exporter.model.catalogue import ASSUMED_LIMITS, PUBLISHED_LIMITS

ASSUMED_UNKNOWN_ACTION_LIMIT = 60
"""ASSUMPTION: any other action gets this many calls per 60 s unless configured."""

LIMIT_PERIOD = 60.0
DEFAULT_SHARE = 0.8
"""Use 80 % of a limit by default: headroom for other tools sharing the account."""

MIN_FACTOR = 0.1
"""Throttling answers never slow a budget below this fraction of its configured rate."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateBudget:
    """Evenly spaced call slots for one (profile, region, action).

    `acquire()` reserves the next free slot before it waits, so concurrent callers queue in
    order and each gets its own slot. `burst` > 1 lets that many calls through at once after
    an idle spell; the default of 1 spaces every call by `period / calls`.
    """

    def __init__(
        self,
        calls: float,
        period: float,
        *,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if calls <= 0 or period <= 0:
            raise ValueError(f"a rate budget needs calls > 0 and period > 0, not {calls}/{period}s")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self._base_interval = period / calls
        self._recovery_step = 1.0 / calls
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._factor = 1.0
        self._next_slot = -math.inf
        self._slow_until = -math.inf
        self._generation = 0

    @property
    def interval(self) -> float:
        """Seconds between two slots at the current (possibly slowed) rate."""
        return self._base_interval / self._factor

    @property
    def rate_per_second(self) -> float:
        """Calls per second this budget currently allows."""
        return 1.0 / self.interval

    async def acquire(self) -> None:
        """Wait for the next free slot.

        A caller whose wait spans a throttling answer queues again: the slot it held was
        handed out at the rate the API has just refused.
        """
        while True:
            generation = self._generation
            now = self._clock()
            interval = self.interval
            slot = max(self._next_slot, now - (self._burst - 1) * interval)
            self._next_slot = slot + interval
            if slot <= now:
                return
            await self._sleep(slot - now)
            if generation == self._generation:
                return

    def throttled(self, retry_after: float | None = None) -> None:
        """The API said `Throttling`: halve the rate and hold every slot back.

        Answers to calls already in flight arrive together; they count as one signal.
        """
        now = self._clock()
        if now >= self._slow_until:
            self._factor = max(MIN_FACTOR, self._factor / 2)
            self._generation += 1
            self._next_slot = now
        hold = max(retry_after or 0.0, self.interval)
        self._slow_until = max(self._slow_until, now + hold)
        self._next_slot = max(self._next_slot, now + hold)

    def succeeded(self) -> None:
        """A call went through: win back part of a throttled rate (back to full after
        about one period's worth of clean calls)."""
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor + self._recovery_step)


class RateBudgets:
    """The registry of budgets, keyed by (credentials profile, region, action).

    `overrides` maps an action to `(calls, period_seconds)`: the budget itself, not a
    limit to take `share` of. Every budget is divided by `shards`, since each shard of a
    sharded deployment polls with the same accounts.
    """

    def __init__(
        self,
        overrides: Mapping[str, tuple[float, float]] | None = None,
        *,
        share: float = DEFAULT_SHARE,
        shards: int = 1,
        burst: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        for action, (calls, period) in (overrides or {}).items():
            if calls <= 0 or period <= 0:
                raise ValueError(f"rate limit of {action} must be positive, not {calls}/{period}s")
        self._overrides = dict(overrides or {})
        self._share = share
        self._shards = shards
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._budgets: dict[tuple[str, str, str], RateBudget] = {}

    def limit(self, action: str) -> tuple[float, float]:
        """`(calls, period)` this exporter (this shard) may spend on `action`."""
        if action in self._overrides:
            calls, period = self._overrides[action]
        else:
            published = PUBLISHED_LIMITS.get(action) or ASSUMED_LIMITS.get(action)
            calls = (published or ASSUMED_UNKNOWN_ACTION_LIMIT) * self._share
            period = LIMIT_PERIOD
        return calls / self._shards, period

    def rate_per_second(self, action: str) -> float:
        """The configured calls per second for `action` (before any throttling slow-down)."""
        calls, period = self.limit(action)
        return calls / period

    def get(self, profile: str, region_id: str, action: str) -> RateBudget:
        """The budget of `action` for one account (profile) in one region."""
        key = (profile, region_id, action)
        budget = self._budgets.get(key)
        if budget is None:
            calls, period = self.limit(action)
            budget = RateBudget(
                calls, period, burst=self._burst, clock=self._clock, sleep=self._sleep
            )
            self._budgets[key] = budget
        return budget
