"""The inventory: which gateways each target polls, what they and their connections look
like, and the pace the API budgets allow for all of it.

Per target, two scheduled refreshes keep it current:

- `gateways:<target>` (DescribeVpnGateways), every `discover.interval` (15 minutes for a
  target without discovery): discovery's gateways merged with the listed ones, each
  described for `aliyun_vpn_gateway_info`. Gateways discovery no longer finds stop being
  polled and lose their series; a discovery that fails keeps what it found before.
- `connections:<target>` (DescribeVpnConnections), every poll interval of the target:
  the status of every connection of its gateways, also at once when gateways were added.

Only this shard's gateways are kept (`exporter.collect.sharding`). A gateway another target lists
by ID is left to that target, not discovered twice.

The pace: every target's poll cycle and scheduled diagnoses want calls of the (account,
region) budgets they share; `exporter.collect.planner` stretches them together when the budget is
short. It is planned again whenever the number of gateways or connections changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.clock import Clock
from exporter.cloud import connection_listing, gateway_listing
from exporter.cloud.actions import DIAGNOSE_ACTION, RESULT_ACTION
from exporter.cloud.connection_listing import list_connections
from exporter.cloud.errors import (
    ApiError,
    CloudError,
    CredentialsError,
    clock_problem_message,
    failure_code,
)
from exporter.cloud.gateway_listing import describe, discover
from exporter.cloud.ratelimit import RateBudgets
from exporter.collect.planner import Demand, TargetPlan, effective_intervals
from exporter.collect.sharding import UNSHARDED, Shard
from exporter.collect.targets import TargetInventory
from exporter.config.model import Config, DiscoverConfig
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import with_info, with_vpn_connections
from exporter.exposition.state_file import SavedTarget
from exporter.model.gateway import DiscoveredGateway

log = logging.getLogger(__name__)

INFO_INTERVAL = 900.0
"""How often a target without discovery refreshes its gateways' info."""
YIELD_EVERY = 50
"""Gateways re-rendered between two yields to the event loop in a refresh: some 10 ms of
work, so that a refresh of thousands of gateways never stalls polls and scrapes."""
READS_PER_DIAGNOSIS = 3
"""ASSUMPTION (planning only): result reads per scheduled diagnosis. A diagnosis runs for
seconds (FACTS); with the default `diagnose.result_interval` that is two or three reads."""


class PlanReceiver(Protocol):
    """Where a target's new plan goes: the poll scheduler (`exporter.collect.scheduler`)."""

    def update_plan(
        self,
        name: str,
        *,
        gateways: Sequence[str],
        effective_interval: float,
        jitter: float,
        startup_spacing: float,
        diagnose_interval: float | None,
        diagnose_max_age: float | None,
    ) -> None: ...


class Inventory:
    """Every target's inventory, its refresh jobs and the plan of the poll scheduler."""

    def __init__(
        self,
        config: Config,
        *,
        client_for: Callable[[str, str], Any],
        budgets: RateBudgets,
        fleet: Fleet,
        clock: Clock,
        shard: Shard = UNSHARDED,
    ) -> None:
        self.config = config
        self.budgets = budgets
        self.fleet = fleet
        self.clock = clock
        self.shard = shard
        self.targets: dict[str, TargetInventory] = {}
        for target in config.targets:
            others = frozenset(
                gateway
                for other in config.targets
                if other is not target
                for gateway in other.gateways
            )
            self.targets[target.name] = TargetInventory(
                target=target,
                client=client_for(target.credentials, target.region_id),
                account=config.account_of(target.credentials),
                listed=tuple(shard.select(target.gateways)),
                listed_elsewhere=others,
            )
        self._jobs: AsyncIOScheduler | None = None
        self._plans: PlanReceiver | None = None
        self._intervals = self._plan()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- planning ------------------------------------------------------------------------

    def _demands(self) -> list[Demand]:
        demands = []
        diagnose = self.config.diagnose
        for inventory in self.targets.values():
            budget = (inventory.account, inventory.region_id)
            demands.append(
                Demand(
                    job=f"poll:{inventory.name}",
                    budget=budget,
                    interval=self.config.interval_for(inventory.target),
                    calls={RESULT_ACTION: len(inventory.gateways)},
                )
            )
            if diagnose.enabled:
                count = inventory.connection_count()
                demands.append(
                    Demand(
                        job=f"diagnose:{inventory.name}",
                        budget=budget,
                        interval=diagnose.interval,
                        calls={
                            DIAGNOSE_ACTION: count,
                            RESULT_ACTION: count * READS_PER_DIAGNOSIS,
                        },
                    )
                )
        return demands

    def _plan(self) -> dict[str, float]:
        return effective_intervals(self._demands(), self.budgets.rate_per_second)

    def effective_interval(self, name: str) -> float:
        """How often target `name` can poll all its gateways."""
        return self._intervals[f"poll:{name}"]

    def diagnose_interval(self, name: str) -> float:
        """How often target `name` can diagnose all its connections."""
        return self._intervals.get(f"diagnose:{name}", self.config.diagnose.interval)

    def startup_spacing(self, name: str, action: str = RESULT_ACTION) -> float:
        """Seconds between a target's calls when all targets of its budget start at once:
        its share of the budget, by number of gateways."""
        inventory = self.targets[name]
        budget = (inventory.account, inventory.region_id)
        together = sum(
            len(other.gateways)
            for other in self.targets.values()
            if (other.account, other.region_id) == budget
        )
        rate = self.budgets.rate_per_second(action)
        mine = len(inventory.gateways)
        if rate <= 0:
            return 0.0
        return max(together, 1) / (rate * max(mine, 1))

    def poll_plan(self, name: str) -> TargetPlan:
        """The poll plan of target `name` as things stand."""
        inventory = self.targets[name]
        effective = self.effective_interval(name)
        diagnose = self.config.diagnose
        diagnose_interval = self.diagnose_interval(name) if diagnose.enabled else None
        return TargetPlan(
            name=name,
            region_id=inventory.region_id,
            gateways=list(inventory.gateways),
            client=inventory.client,
            interval=self.config.interval_for(inventory.target),
            effective_interval=effective,
            stale_after=self.config.poll.stale_after,
            jitter=self.config.poll.jitter * effective,
            startup_spacing=self.startup_spacing(name),
            profile=inventory.target.credentials,
            diagnose_interval=diagnose_interval,
            diagnose_max_age=(
                diagnose.manual_max_age
                if diagnose_interval is None
                else 2 * diagnose_interval + diagnose.timeout
            ),
        )

    def poll_plans(self) -> list[TargetPlan]:
        return [self.poll_plan(name) for name in self.targets]

    def replan(self) -> None:
        """Share the budgets anew (gateway or connection counts changed) and hand every
        target's gateways and pace to the poll scheduler."""
        self._intervals = self._plan()
        if self._plans is None or self._jobs is None:
            return
        for name in self.targets:
            plan = self.poll_plan(name)
            self._plans.update_plan(
                name,
                gateways=plan.gateways,
                effective_interval=plan.effective_interval,
                jitter=plan.jitter,
                startup_spacing=plan.startup_spacing,
                diagnose_interval=plan.diagnose_interval,
                diagnose_max_age=plan.diagnose_max_age,
            )
            self._render(self.targets[name])
            job = self._jobs.get_job(f"diagnose:{name}")
            interval = self.diagnose_interval(name)
            if job is not None and job.trigger.interval.total_seconds() != interval:
                job.reschedule(IntervalTrigger(seconds=interval))

    def adopt(self, previous: Inventory) -> None:
        """Take over what `previous` (the inventory a reload replaces) knew of each target
        kept with the same region, credentials and discovery: discovered gateways, their
        descriptions and connections, listing outcomes. Discovered gateways then stay
        polled and exported across a reload instead of vanishing until the next discovery."""
        for name, inventory in self.targets.items():
            old = previous.targets.get(name)
            if old is None or _identity(old) != _identity(inventory):
                continue
            inventory.discovered = tuple(
                g
                for g in old.discovered
                if g not in inventory.listed_elsewhere and self.shard.owns(g)
            )
            inventory.described = dict(old.described)
            kept = set(inventory.gateways)
            inventory.connections = {g: c for g, c in old.connections.items() if g in kept}
            inventory.listings = dict(old.listings)
            inventory.conditions = dict(old.conditions)
        self._intervals = self._plan()

    def restore(self, saved: Mapping[str, SavedTarget]) -> None:
        """Take the gateways each discovering target found before a restart (from the
        state file), so that they are polled and exported before the first discovery;
        a target whose region or credentials changed starts afresh."""
        for name, inventory in self.targets.items():
            target = saved.get(name)
            if (
                target is None
                or inventory.target.discover is None
                or (target.region_id, target.profile)
                != (inventory.region_id, inventory.target.credentials)
            ):
                continue
            inventory.discovered = tuple(
                g
                for g in target.discovered
                if g not in inventory.listed_elsewhere and self.shard.owns(g)
            )
        self._intervals = self._plan()

    def withdraw(self) -> None:
        """Stop exporting the targets' listing series (before a reload's inventory, which
        renders its own, replaces this one)."""
        for name in self.targets:
            self.fleet.remove_target_inventory(name)

    # --- jobs ----------------------------------------------------------------------------

    def bind(self, jobs: AsyncIOScheduler, plans: PlanReceiver) -> None:
        """Register every target's refresh jobs on `jobs`; they run once it starts, the
        first time at once. Changed plans (gateways, pace) go to `plans`.

        Later refreshes are staggered across targets (target i of n starts its interval
        i/n of an interval late), so that the re-rendering of thousands of gateways after
        each listing does not land for every target at the same moment."""
        self._jobs = jobs
        self._plans = plans
        now = datetime.now(UTC)
        for index, (name, inventory) in enumerate(self.targets.items()):
            discover_settings = inventory.target.discover
            phase = 1 + index / len(self.targets)
            refreshes = (
                (
                    "gateways",
                    self.refresh_gateways,
                    discover_settings.interval if discover_settings else INFO_INTERVAL,
                ),
                (
                    "connections",
                    self.refresh_connections,
                    self.config.interval_for(inventory.target),
                ),
            )
            for what, refresh, every in refreshes:
                jobs.add_job(
                    refresh,
                    "date",
                    run_date=now,
                    args=[name],
                    id=f"{what}-first:{name}",
                    misfire_grace_time=None,
                )
                jobs.add_job(
                    refresh,
                    IntervalTrigger(
                        seconds=every, start_date=now + timedelta(seconds=phase * every)
                    ),
                    args=[name],
                    id=f"{what}:{name}",
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=None,
                )
            self._render(inventory)

    async def stop(self) -> None:
        """Cancel refreshes started outside the scheduler's jobs."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def refresh_gateways(self, name: str) -> None:
        """DescribeVpnGateways for target `name`: discovery, then the listed gateways'
        descriptions; a change of gateways is handed to the poll scheduler."""
        await self._exclusive(name, "gateways", self._refresh_gateways)

    async def refresh_connections(self, name: str) -> None:
        """DescribeVpnConnections for target `name`'s gateways."""
        await self._exclusive(name, "connections", self._refresh_connections)

    async def _exclusive(
        self, name: str, what: str, refresh: Callable[[TargetInventory], Any]
    ) -> None:
        """Run one refresh of a target at a time; a refresh asked for meanwhile runs once
        more afterwards, so new gateways are never left for a whole interval."""
        inventory = self.targets[name]
        if what in inventory.refreshing:
            inventory.again.add(what)
            return
        inventory.refreshing.add(what)
        try:
            while True:
                inventory.again.discard(what)
                try:
                    await refresh(inventory)
                except Exception:
                    log.exception(f"{what} refresh crashed", extra={"fields": {"target": name}})
                if what not in inventory.again:
                    break
        finally:
            inventory.refreshing.discard(what)

    def _soon(self, name: str, what: str) -> None:
        refresh = self.refresh_connections if what == "connections" else self.refresh_gateways
        task = asyncio.create_task(refresh(name), name=f"{what}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_gateways(self, inventory: TargetInventory) -> None:
        now = self.clock.time()
        described: dict[str, DiscoveredGateway] = {}
        discovered = inventory.discovered
        success = True
        unanswered: set[str] = set()  # no answer said anything about them: info stays
        settings = inventory.target.discover
        if settings is not None:
            try:
                found = await discover(inventory.client, settings)
            except ApiError as error:
                success = False
                unanswered.update(inventory.discovered)
                described.update(
                    (g, inventory.described[g])
                    for g in inventory.discovered
                    if g in inventory.described
                )
                self._condition(
                    inventory,
                    "discovery",
                    failure_code(error),
                    f"discovery failed, keeping the {len(discovered)} gateways found before: "
                    + _explained(error),
                    quiet=isinstance(error, CredentialsError),
                )
            else:
                mine = [
                    gateway
                    for gateway in found
                    if self.shard.owns(gateway.vpn_gateway_id)
                    and gateway.vpn_gateway_id not in inventory.listed_elsewhere
                ]
                discovered = tuple(gateway.vpn_gateway_id for gateway in mine)
                described.update((gateway.vpn_gateway_id, gateway) for gateway in mine)
                self._condition(inventory, "discovery", None)
                self._condition(
                    inventory,
                    "discovery match",
                    None if found else "NoMatch",
                    "discovery matched no gateway: check the filters, the region and the "
                    "account of the credentials",
                    fields={"filters": _filters(settings)},
                )
        missing = [g for g in inventory.listed if g not in described]
        if missing:
            lookup = await describe(inventory.client, missing)
            unanswered.update(lookup.failed)
            for gateway_id in lookup.failed:
                if gateway_id in inventory.described:
                    described[gateway_id] = inventory.described[gateway_id]
            if lookup.failed:
                success = False
                problem = next(iter(lookup.failed.values()))
                self._condition(
                    inventory,
                    "describe",
                    failure_code(problem),
                    "cannot describe listed gateways: " + _explained(problem),
                    quiet=isinstance(problem, CredentialsError),
                )
            else:
                self._condition(inventory, "describe", None)
            for items in lookup.found.values():
                described.update((gateway.vpn_gateway_id, gateway) for gateway in items)
            unknown = ",".join(sorted(g for g, items in lookup.found.items() if not items))
            self._condition(
                inventory,
                "unknown",
                unknown or None,
                "DescribeVpnGateways does not know listed gateways (wrong ID or region?): "
                + unknown,
            )
        inventory.described = described
        self._listing(inventory, gateway_listing.ACTION, success, now)
        added = False
        if discovered != inventory.discovered:
            before = set(inventory.gateways)
            inventory.discovered = discovered
            after = set(inventory.gateways)
            for gone in before - after:
                inventory.connections.pop(gone, None)
            log.info(
                "target gateways changed",
                extra={
                    "fields": {
                        "target": inventory.name,
                        "added": ",".join(sorted(after - before)),
                        "removed": ",".join(sorted(before - after)),
                        "gateways": len(after),
                    }
                },
            )
            self.replan()
            added = bool(after - before)
            if added:
                self._soon(inventory.name, "connections")
        await self._write_infos(inventory, unanswered)
        self._render(inventory)
        if not inventory.gateways_refreshed:
            inventory.gateways_refreshed = True
            if not inventory.connections_listed.is_set() and not added:
                self._soon(inventory.name, "connections")

    async def _write_infos(self, inventory: TargetInventory, unanswered: set[str]) -> None:
        """Write each gateway's description into its record; a gateway in `unanswered`
        (its listing failed) keeps the info it had (latest known, e.g. a restored one)."""
        now = self.clock.time()
        tags = self.config.gateway_info.tags
        for index, gateway_id in enumerate(inventory.gateways):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)
            key = inventory.key(gateway_id)
            if key not in self.fleet.records:
                continue
            gateway = inventory.described.get(gateway_id)
            if gateway is None and gateway_id in unanswered:
                continue
            info = gateway.info(tags) if gateway is not None else None
            record = self.fleet.get(key)
            updated = with_info(record, info)
            if updated is not record:
                self.fleet.update(updated, now)

    async def _refresh_connections(self, inventory: TargetInventory) -> None:
        gateways = inventory.gateways
        before = inventory.connection_count()
        lookup = await list_connections(inventory.client, gateways)
        now = self.clock.time()
        current = set(inventory.gateways)  # the gateways may have changed meanwhile
        for index, (gateway_id, found) in enumerate(lookup.found.items()):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)
            if gateway_id not in current:
                continue
            listed = tuple({c.vpn_connection_id: c for c in found}.values())
            if listed == inventory.connections.get(gateway_id):
                listed = inventory.connections[gateway_id]  # keep the objects already kept
            inventory.connections[gateway_id] = listed
            key = inventory.key(gateway_id)
            if key in self.fleet.records:
                self.fleet.update(with_vpn_connections(self.fleet.get(key), listed, now), now)
        for gone in set(inventory.connections) - set(inventory.gateways):
            del inventory.connections[gone]
        if lookup.failed:
            first = next(iter(lookup.failed.values()))
            self._condition(
                inventory,
                "connections",
                failure_code(first),
                f"cannot list the connections of {len(lookup.failed)} gateways, keeping "
                "their last status: " + _explained(first),
                quiet=isinstance(first, CredentialsError),
            )
        else:
            self._condition(inventory, "connections", None)
        self._listing(inventory, connection_listing.ACTION, not lookup.failed, now)
        if inventory.gateways_refreshed and current <= set(gateways):
            inventory.connections_listed.set()
        if self.config.diagnose.enabled and inventory.connection_count() != before:
            self.replan()
        self._render(inventory)

    # --- reporting -----------------------------------------------------------------------

    def _listing(self, inventory: TargetInventory, action: str, success: bool, now: float) -> None:
        _, last_success = inventory.listings.get(action, (False, None))
        inventory.listings[action] = (success, now if success else last_success)

    def _render(self, inventory: TargetInventory) -> None:
        self.fleet.set_target_inventory(
            inventory.name, len(inventory.gateways), dict(inventory.listings)
        )

    @staticmethod
    def _condition(
        inventory: TargetInventory,
        topic: str,
        condition: str | None,
        message: str = "",
        *,
        quiet: bool = False,
        fields: dict[str, str] | None = None,
    ) -> None:
        """Log a target's problem when it starts or its `condition` (an error code)
        changes, and once when it ends (`condition` None); not on every refresh. `quiet`
        problems are logged at debug level: a failing credentials profile, which
        `exporter.cloud.profiles` reports once for all its targets."""
        previous = inventory.conditions.get(topic)
        if condition == previous:
            return
        base = {"target": inventory.name, "region_id": inventory.region_id}
        if condition is None:
            del inventory.conditions[topic]
            log.info(f"{topic} recovered", extra={"fields": base})
        else:
            inventory.conditions[topic] = condition
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                message,
                extra={"fields": {**base, **(fields or {}), "code": condition}},
            )


def _explained(error: ApiError) -> str:
    """The error, with what to do about it when it is a clock or authentication problem."""
    if isinstance(error, CloudError) and error.clock_problem:
        return f"{error} ({clock_problem_message(error)})"
    advice = error.advice if isinstance(error, CloudError | CredentialsError) else None
    return f"{error} ({advice})" if advice else str(error)


def _filters(settings: DiscoverConfig) -> str:
    """The discovery filters as a user wrote them (`tags={env: prod} statuses=[active]`)."""
    parts = [
        f"tags={{{', '.join(f'{k}: {v}' for k, v in settings.tags.items())}}}"
        if settings.tags
        else "",
        f"vpc_ids=[{', '.join(settings.vpc_ids)}]" if settings.vpc_ids else "",
        f"resource_group_id={settings.resource_group_id}" if settings.resource_group_id else "",
        f"statuses=[{', '.join(settings.statuses)}]" if settings.statuses else "",
    ]
    return " ".join(part for part in parts if part) or "none (every gateway)"


def _identity(inventory: TargetInventory) -> tuple[object, ...]:
    """What must not change for a reload to keep a target's inventory."""
    target = inventory.target
    return (target.region_id, target.credentials, inventory.account, target.discover)
