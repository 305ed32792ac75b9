"""Poll cycles on APScheduler: one job per target, polls spread evenly over the interval.

A target's job fires every *effective* interval (the configured one, stretched when the
API budget cannot poll every gateway that often) and starts at once, not one interval after
start. A cycle launches the target's gateways one slot apart, so calls never burst at the
top of the interval; the client's rate budget still guards every attempt. The first cycle
after start runs at the budget's pace instead, so that data arrives as soon as the API
allows. A gateway whose
previous poll is still in flight is skipped, never polled twice at once.

A target's gateways and pace may change while it runs (discovery finds or loses
gateways, the budget is shared anew): `update_plan` drops the series of gateways that
went, polls new ones at the budget's pace without waiting for the next cycle, and
reschedules the cycle when its effective interval changed.

The pace achieved (`aliyun_vpn_poll_effective_interval_seconds`) is measured, not
planned: a poll counts as *launched* when the rate budget grants its first attempt (the
moment its call could go out; a poll queued behind an exhausted or throttled budget has
not launched yet). A target's cycle completes once each of its gateways has launched
since the previous completion; the exported pace is then the longest time between two
successive launches of one gateway in that cycle. It grows under throttling and keeps
its value while nothing launches. A gateway backing off because it does not exist is
left out of both.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.clock import Clock
from exporter.cloud.actions import NO_SUCH_GATEWAY, DiagnosisSource
from exporter.collect.planner import TargetPlan
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import GatewayKey, PollResult

log = logging.getLogger(__name__)


class _NotCancelled(logging.Filter):
    """Drops APScheduler's "Job ... raised an exception" for a job cancelled because the
    scheduler stopped (a shutdown or a reload): that is no error, and a traceback in the
    log would say it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


logging.getLogger("apscheduler.executors.default").addFilter(_NotCancelled())

MISSING_GATEWAY_BACKOFF = 3600.0
"""A gateway that does not exist is retried hourly: it is a configuration problem."""
SWEEP_INTERVAL = 1.0
MAX_IN_FLIGHT = 64
"""Polls of one target in flight at once. A cycle waits for room before launching more:
when results arrive faster than the event loop absorbs them (a first cycle at a raised
budget, a loop busy serving scrapes), launches slow down instead of results piling up.
Per target, not overall: a poll waiting for its region's budget counts as in flight, and
one region's queue must not hold up the others. At the published budgets (2 calls a
second per region) a few polls are in flight."""


def effective_interval(interval: float, gateways: int, calls_per_second: float) -> float:
    """The shortest interval at which `gateways` polls fit into the rate budget."""
    if gateways == 0 or calls_per_second <= 0:
        return interval
    return max(interval, gateways / calls_per_second)


@dataclass(slots=True)
class _FirstCycle:
    """A target's first poll cycle (since start or reload), until every poll has ended."""

    started: float
    pending: set[GatewayKey] = field(default_factory=set)
    gateways: int = 0
    failed: int = 0


class GatewayPoller(Protocol):
    """What a poll cycle launches: one poll of one gateway (`exporter.collect.poller`);
    `launched` is called when the rate budget grants its first attempt."""

    async def poll(
        self, key: GatewayKey, client: DiagnosisSource, launched: Callable[[], None] | None = None
    ) -> PollResult: ...


@dataclass
class Pace:
    """One target's launches, to measure the pace it achieves (see the module doc)."""

    last_launch: dict[GatewayKey, float] = field(default_factory=dict)
    """Monotonic time of each gateway's latest launch."""
    launched: set[GatewayKey] = field(default_factory=set)
    """Gateways launched in the current cycle."""
    longest_gap: float = 0.0
    """The longest time between two launches of one gateway in the current cycle."""
    achieved: float | None = None
    """The longest gap of the last completed cycle (None: no cycle completed yet)."""

    def launch(
        self,
        key: GatewayKey,
        now: float,
        keys: Sequence[GatewayKey],
        excused: Callable[[GatewayKey], bool],
        excused_at_most: int,
    ) -> bool:
        """Note a launch of `key` at `now`; True when it completed a cycle of `keys`
        (gateways `excused` need not launch; at most `excused_at_most` are) in which some
        gateway launched twice, so that `achieved` changed."""
        previous = self.last_launch.get(key)
        self.last_launch[key] = now
        if previous is not None:
            self.longest_gap = max(self.longest_gap, now - previous)
        self.launched.add(key)
        if len(self.launched) + excused_at_most < len(keys) or not all(
            k in self.launched or excused(k) for k in keys
        ):
            return False
        completed = self.longest_gap > 0
        if completed:
            self.achieved = self.longest_gap
        self.launched = set()
        self.longest_gap = 0.0
        return completed

    def forget(self, key: GatewayKey) -> None:
        """`key` stops counting (gone, or backing off): its next launch starts afresh."""
        self.last_launch.pop(key, None)
        self.launched.discard(key)


class PollScheduler:
    """Runs every target's poll cycles and the staleness sweep."""

    def __init__(
        self, plans: Sequence[TargetPlan], poller: GatewayPoller, fleet: Fleet, clock: Clock
    ) -> None:
        self.plans = list(plans)
        self.poller = poller
        self.fleet = fleet
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._in_flight: dict[GatewayKey, asyncio.Task[object]] = {}
        self._pace: dict[str, Pace] = {plan.name: Pace() for plan in self.plans}
        self._skip_until: dict[GatewayKey, float] = {}
        self._cycles_begun: set[str] = set()
        self._last_cycle: dict[str, float] = {}
        self._started = False
        self._catch_ups: set[asyncio.Task[None]] = set()
        self._cycle_tasks: set[asyncio.Task[object]] = set()
        self._stopping = False
        self._flying: Counter[str] = Counter()
        """Polls in flight per target."""
        self._room = asyncio.Event()
        """Set when a poll ends (there may be room for another launch)."""
        self._first_cycles: dict[str, _FirstCycle | None] = {}
        """Per target; None once its first cycle has been reported."""

    def start(self) -> None:
        """Register the targets with the fleet and start polling at once."""
        now = datetime.now(UTC)
        self._started = True
        for plan in self.plans:
            self._configure(plan)
            self._warn_if_stretched(plan)
            self.scheduler.add_job(
                self.run_cycle,
                IntervalTrigger(seconds=plan.effective_interval, jitter=plan.jitter or None),
                args=[plan],
                id=f"poll:{plan.name}",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self.scheduler.add_job(
            self.sweep, IntervalTrigger(seconds=SWEEP_INTERVAL), id="sweep", max_instances=1
        )
        self.scheduler.start()

    def _configure(self, plan: TargetPlan) -> None:
        pace = self._pace.setdefault(plan.name, Pace())
        for key in [k for k in pace.last_launch if k not in set(plan.keys)]:
            pace.forget(key)
        self.fleet.configure_target(
            plan.record(pace.achieved), plan.keys, stale_after=plan.stale_after
        )

    def achieved(self, name: str) -> float | None:
        """The pace target `name` achieved over its last completed cycle, if one did."""
        pace = self._pace.get(name)
        return None if pace is None else pace.achieved

    def restore_pace(self, name: str, achieved: float) -> None:
        """Take a pace measured before a restart (from the state file) until a cycle
        completes, so that thresholds derived from it hold from the first scrape."""
        pace = self._pace.get(name)
        if pace is not None and pace.achieved is None:
            pace.achieved = achieved

    def effective_interval(self, name: str) -> float:
        """The pace target `name` achieves: measured once a cycle completed, else planned."""
        achieved = self._pace[name].achieved
        return self.plan(name).effective_interval if achieved is None else achieved

    def _launched(self, key: GatewayKey) -> None:
        """The budget granted the first attempt of `key`'s poll: note the launch."""
        pace = self._pace.get(key.target)
        if pace is None:
            return
        now = self.clock.monotonic()
        keys = self.plan(key.target).keys
        excused = len(self._skip_until)
        if pace.launch(key, now, keys, lambda k: self._skip_until.get(k, 0.0) > now, excused):
            self.fleet.set_pace(
                key.target, effective_interval=pace.achieved, last_launch_at=self.clock.time()
            )
        else:
            self.fleet.set_pace(key.target, last_launch_at=self.clock.time())

    @staticmethod
    def _warn_if_stretched(plan: TargetPlan) -> None:
        if plan.effective_interval > plan.interval:
            log.warning(
                "the API budget cannot poll every gateway of the target within its interval",
                extra={
                    "fields": {
                        "target": plan.name,
                        "gateways": len(plan.keys),
                        "interval_seconds": plan.interval,
                        "effective_interval_seconds": round(plan.effective_interval, 1),
                    }
                },
            )

    def plan(self, name: str) -> TargetPlan:
        """The plan of target `name`."""
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise KeyError(name)

    def update_plan(
        self,
        name: str,
        *,
        gateways: Sequence[str] | None = None,
        effective_interval: float | None = None,
        jitter: float | None = None,
        startup_spacing: float | None = None,
        diagnose_interval: float | None = None,
        diagnose_max_age: float | None = None,
    ) -> None:
        """Change what target `name` polls, or how often, while it runs (see the module
        doc); arguments left None keep their value."""
        plan = self.plan(name)
        before = set(plan.keys)
        was_stretched = plan.effective_interval > plan.interval
        retimed = effective_interval is not None and effective_interval != plan.effective_interval
        if gateways is not None:
            plan.gateways = list(gateways)
            plan.keys = [GatewayKey(plan.name, plan.region_id, g) for g in plan.gateways]
        if effective_interval is not None:
            plan.effective_interval = float(effective_interval)
        if diagnose_interval is not None:
            plan.diagnose_interval = diagnose_interval
        if diagnose_max_age is not None:
            plan.diagnose_max_age = diagnose_max_age
        if jitter is not None:
            plan.jitter = jitter
        if startup_spacing is not None:
            plan.startup_spacing = startup_spacing
        if not self._started:
            return  # start() configures the fleet and schedules the cycle
        self._configure(plan)
        if retimed:
            if plan.effective_interval > plan.interval and not was_stretched:
                self._warn_if_stretched(plan)
            if self.scheduler.running and self.scheduler.get_job(f"poll:{name}") is not None:
                self.scheduler.reschedule_job(
                    f"poll:{name}",
                    trigger=IntervalTrigger(
                        seconds=plan.effective_interval, jitter=plan.jitter or None
                    ),
                )
        added = [key for key in plan.keys if key not in before]
        if added and name in self._last_cycle:
            # A cycle has begun (perhaps with no gateways yet): poll the new ones now; the
            # next cycle spreads them over the interval like the others.
            self._cycles_begun.add(name)
            self._begin_first_cycle(name, added)
            task = asyncio.create_task(self._catch_up(plan, added), name=f"catch-up:{name}")
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)

    async def _catch_up(self, plan: TargetPlan, keys: Sequence[GatewayKey]) -> None:
        """Poll gateways new to a running target at the budget's pace, not a cycle later."""
        start = self.clock.monotonic()
        for index, key in enumerate(keys):
            delay = start + index * plan.startup_spacing - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            await self._wait_for_room(key.target)
            self._launch(key, plan.client)

    async def stop(self) -> None:
        """Stop scheduling and cancel polls in flight; safe to call twice (APScheduler's
        asyncio shutdown completes on the next loop turn, a second one would fail there)."""
        self._started = False
        if self.scheduler.running and not self._stopping:
            self.scheduler.shutdown(wait=False)
        self._stopping = True
        tasks = [*self._in_flight.values(), *self._catch_ups, *self._cycle_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def liveness(self) -> tuple[bool, str]:
        """Whether the scheduler runs and every target's cycles keep starting on time."""
        if not (self.scheduler.running and self.scheduler.get_jobs()):
            return False, "scheduler is not running"
        now = self.clock.monotonic()
        for plan in self.plans:
            started = self._last_cycle.get(plan.name)
            if started is not None and now - started > 2 * plan.effective_interval + 60:
                return (
                    False,
                    f"no poll cycle of target {plan.name} started since {now - started:.0f}s",
                )
        return True, "ok"

    def sweep(self) -> None:
        self.fleet.sweep(self.clock.time())

    async def run_cycle(self, plan: TargetPlan) -> None:
        """Launch one poll per gateway of `plan`, evenly spaced over its interval.

        `stop` cancels a cycle that is still spacing its launches; the cycle then ends
        quietly instead of reporting the cancellation as a failed job.
        """
        task = asyncio.current_task()
        if task is not None:
            self._cycle_tasks.add(task)
        try:
            await self._launch_spaced(plan)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            if task is not None:
                self._cycle_tasks.discard(task)

    async def _launch_spaced(self, plan: TargetPlan) -> None:
        self._last_cycle[plan.name] = self.clock.monotonic()
        keys = plan.keys
        if not keys:
            return
        spacing = plan.effective_interval / len(keys)
        offset = 0.0
        if plan.name not in self._cycles_begun:
            self._cycles_begun.add(plan.name)
            self._begin_first_cycle(plan.name, keys)
            spacing = min(spacing, plan.startup_spacing)
        elif spacing > 0:
            # A random phase per cycle keeps targets with equal intervals from polling in step.
            offset = random.uniform(0, spacing)
        start = self.clock.monotonic()
        for index, key in enumerate(keys):
            delay = start + offset + index * spacing - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            await self._wait_for_room(key.target)
            self._launch(key, plan.client)

    async def _wait_for_room(self, target: str) -> None:
        """Backpressure: wait while `MAX_IN_FLIGHT` polls of `target` are in flight."""
        while self._flying[target] >= MAX_IN_FLIGHT:
            self._room.clear()
            await self._room.wait()

    def _begin_first_cycle(self, name: str, keys: Sequence[GatewayKey]) -> None:
        if name not in self._first_cycles:
            self._first_cycles[name] = _FirstCycle(self.clock.monotonic(), set(keys), len(keys))

    def _first_cycle_poll_ended(self, key: GatewayKey, success: bool | None) -> None:
        """Count a poll of a target's first cycle (`success` None: not launched); say once
        when all have ended, so a user sees the first data is in."""
        cycle = self._first_cycles.get(key.target)
        if cycle is None or key not in cycle.pending:
            return
        cycle.pending.discard(key)
        if success is False:
            cycle.failed += 1
        if cycle.pending:
            return
        self._first_cycles[key.target] = None
        log.info(
            "first poll cycle completed",
            extra={
                "fields": {
                    "target": key.target,
                    "gateways": cycle.gateways,
                    "failed": cycle.failed,
                    "seconds": round(self.clock.monotonic() - cycle.started, 1),
                }
            },
        )

    def _launch(self, key: GatewayKey, client: DiagnosisSource) -> None:
        if key not in self.fleet.records:
            self._first_cycle_poll_ended(key, None)
            return  # the target no longer polls it (discovery lost it mid-cycle)
        if key in self._in_flight:
            log.debug(
                "previous poll still running",
                extra={"fields": {"vpn_gateway_id": key.vpn_gateway_id}},
            )
            return
        if self._skip_until.get(key, 0.0) > self.clock.monotonic():
            self._first_cycle_poll_ended(key, None)
            return
        task = asyncio.create_task(self._poll(key, client), name=f"poll:{key.vpn_gateway_id}")
        self._in_flight[key] = task
        self._flying[key.target] += 1

    async def _poll(self, key: GatewayKey, client: DiagnosisSource) -> None:
        try:
            result = await self.poller.poll(key, client, lambda: self._launched(key))
            if result.error_code == NO_SUCH_GATEWAY:
                self._skip_until[key] = self.clock.monotonic() + MISSING_GATEWAY_BACKOFF
                pace = self._pace.get(key.target)
                if pace is not None:
                    pace.forget(key)
            else:
                self._skip_until.pop(key, None)
            self._first_cycle_poll_ended(key, result.success)
        except Exception:
            log.exception("poll crashed", extra={"fields": {"vpn_gateway_id": key.vpn_gateway_id}})
            self._first_cycle_poll_ended(key, False)
        finally:
            if self._in_flight.pop(key, None) is not None:
                self._flying[key.target] -= 1
            self._room.set()
