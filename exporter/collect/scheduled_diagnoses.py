"""Scheduled diagnoses: the exporter starts a quick diagnosis of every connection itself.

With `diagnose.enabled`, a job per target diagnoses each connection the inventory knows
(DescribeVpnConnections) once per diagnose interval, the starts spread evenly over it
(the first cycle at the budget's pace, so that data arrives soon after start). One
diagnosis: DiagnoseVpnGateway (with the connection's `IPsecExtendInfo` from
`diagnose.connections` when given, and a ClientToken so that retries start it once),
then GetVpnGatewayDiagnoseResult by its DiagnoseId every `result_interval` until
FinishedCount reaches TotalCount or `timeout` passes. Each read goes into the
connection's record, progress included, exactly like a poll's answer about that
connection; the gateway's poll series stay the polls' own.

The latest-result poll of each gateway goes on as before, so a diagnosis someone starts
in the console is still picked up. The interval is stretched with the polls when the
budgets are short (`exporter.collect.inventory`), and every call takes its slot of the account's
and region's budget like any other.

Counters: `aliyun_vpn_diagnoses_started_total`, `_finished_total`, `_timed_out_total` and
`_failed_total{code}` (could not be started or read).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.clock import Clock
from exporter.cloud.actions import DIAGNOSE_ACTION, DIAGNOSIS_FAILED, RESULT_ACTION, DiagnosisRunner
from exporter.cloud.errors import ApiError, CloudError, InvalidResponse, failure_code
from exporter.collect.targets import TargetInventory, connections_of
from exporter.config.model import DiagnoseConfig
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import with_scheduled_diagnosis
from exporter.model.diagnosis import Diagnosis
from exporter.model.parser import ResponseShapeError, parse_diagnosis
from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

KEEP_INTERVALS = 2
"""A scheduled diagnosis' data is kept this many diagnose intervals after it was read,
whatever the gateway polls say: only the next scheduled diagnosis can confirm it."""


class DiagnosePace(Protocol):
    """What scheduled diagnoses need of the inventory (`exporter.collect.inventory`): the
    targets' connections and the pace the shared budgets allow."""

    @property
    def targets(self) -> Mapping[str, TargetInventory]: ...

    def diagnose_interval(self, name: str) -> float: ...

    def startup_spacing(self, name: str, action: str = RESULT_ACTION) -> float: ...


class Diagnoses:
    """Every target's scheduled diagnoses."""

    def __init__(
        self,
        settings: DiagnoseConfig,
        inventory: DiagnosePace,
        fleet: Fleet,
        metrics: SelfMetrics,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.inventory = inventory
        self.fleet = fleet
        self.metrics = metrics
        self.clock = clock
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._cycles_begun: set[str] = set()
        self._conditions: dict[tuple[str, str], str] = {}

    def bind(self, jobs: AsyncIOScheduler) -> None:
        """Register a diagnose job per target; the first cycle starts with the scheduler,
        once the target's connections are known."""
        now = datetime.now(UTC)
        for name in self.inventory.targets:
            jobs.add_job(
                self.run_cycle,
                IntervalTrigger(seconds=self.inventory.diagnose_interval(name)),
                args=[name],
                id=f"diagnose:{name}",
                next_run_time=now,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    async def stop(self) -> None:
        """Cancel the diagnoses in flight."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run_cycle(self, name: str) -> None:
        """Start one diagnosis per known connection of target `name`, spread evenly over
        the diagnose interval."""
        inventory = self.inventory.targets[name]
        interval = self.inventory.diagnose_interval(name)
        if not inventory.connections_listed.is_set():
            try:
                await asyncio.wait_for(inventory.connections_listed.wait(), timeout=interval)
            except TimeoutError:
                return
        pairs = connections_of(inventory)
        if not pairs:
            return
        spacing = interval / len(pairs)
        offset = 0.0
        if name not in self._cycles_begun:
            self._cycles_begun.add(name)
            spacing = min(spacing, self.inventory.startup_spacing(name, DIAGNOSE_ACTION))
        elif spacing > 0:
            offset = random.uniform(0, spacing)
        start = self.clock.monotonic()
        for index, (gateway_id, connection) in enumerate(pairs):
            delay = start + offset + index * spacing - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            self._launch(inventory, gateway_id, connection.vpn_connection_id)

    def _launch(self, inventory: TargetInventory, gateway_id: str, connection_id: str) -> None:
        slot = (inventory.name, connection_id)
        if slot in self._in_flight:
            return  # the previous diagnosis of this connection is still being read
        if gateway_id not in inventory.gateways:
            return  # discovery lost the gateway since the cycle began
        task = asyncio.create_task(
            self.diagnose(inventory, gateway_id, connection_id), name=f"diagnose:{connection_id}"
        )
        self._in_flight[slot] = task
        task.add_done_callback(lambda _: self._in_flight.pop(slot, None))

    async def diagnose(
        self, inventory: TargetInventory, gateway_id: str, connection_id: str
    ) -> None:
        """Start one diagnosis and read it until it finishes or times out; never raises
        for API trouble."""
        name = inventory.name
        client: DiagnosisRunner = inventory.client
        where = {"target": name, "vpn_gateway_id": gateway_id, "vpn_connection_id": connection_id}
        extend = self.settings.connections.get(connection_id)
        try:
            answer = await client.diagnose_vpn_gateway(
                gateway_id,
                connection_id,
                private_source_ip=str(extend.private_source_ip) if extend else None,
                private_destination_ip=str(extend.private_destination_ip) if extend else None,
                client_token=str(uuid.uuid4()),
            )
        except ApiError as error:
            self._failed(name, connection_id, failure_code(error), f"cannot start: {error}", where)
            return
        diagnose_id = answer.get("DiagnoseId") if isinstance(answer, Mapping) else None
        if not isinstance(diagnose_id, str) or not diagnose_id:
            self.metrics.api_failures.labels(DIAGNOSE_ACTION, InvalidResponse.metric_code).inc()
            self._failed(
                name,
                connection_id,
                InvalidResponse.metric_code,
                "DiagnoseVpnGateway answered without a DiagnoseId",
                where,
            )
            return
        self.metrics.diagnoses_started.labels(name).inc()
        log.debug("diagnosis started", extra={"fields": {**where, "diagnose_id": diagnose_id}})
        deadline = self.clock.monotonic() + self.settings.timeout
        while True:
            await self.clock.sleep(self.settings.result_interval)
            try:
                payload = await client.get_vpn_gateway_diagnose_result(
                    vpn_gateway_id=gateway_id, diagnose_id=diagnose_id
                )
                diagnosis = parse_diagnosis(payload)
            except CloudError as error:
                code = failure_code(error)
                why = (
                    f"the diagnosis failed: {error}"
                    if error.code in DIAGNOSIS_FAILED
                    else f"cannot read the diagnosis: {error}"
                )
                self._failed(name, connection_id, code, why, where)
                return
            except ApiError as error:
                self._failed(
                    name,
                    connection_id,
                    error.metric_code,
                    f"cannot read the diagnosis: {error}",
                    where,
                )
                return
            except ResponseShapeError as error:
                self.metrics.api_failures.labels(RESULT_ACTION, InvalidResponse.metric_code).inc()
                self._failed(
                    name,
                    connection_id,
                    InvalidResponse.metric_code,
                    f"unreadable diagnosis response: {error}",
                    where,
                )
                return
            if diagnosis.connection_id != connection_id:
                log.warning(
                    "the diagnosis is about another connection than the one diagnosed",
                    extra={"fields": {**where, "resource_instance_id": diagnosis.connection_id}},
                )
            self._record(inventory, gateway_id, diagnosis)
            if not diagnosis.running:
                self.metrics.diagnoses_finished.labels(name).inc()
                self._condition(name, connection_id, None, where)
                return
            if self.clock.monotonic() >= deadline:
                self.metrics.diagnoses_timed_out.labels(name).inc()
                self._condition(
                    name,
                    connection_id,
                    f"diagnosis unfinished after {self.settings.timeout:g}s; "
                    "its finished items are shown",
                    where,
                    "Timeout",
                )
                return

    def _record(self, inventory: TargetInventory, gateway_id: str, diagnosis: Diagnosis) -> None:
        key = inventory.key(gateway_id)
        if key not in self.fleet.records:
            return
        now = self.clock.time()
        keep_until = now + KEEP_INTERVALS * self.inventory.diagnose_interval(inventory.name)
        self.fleet.update(
            with_scheduled_diagnosis(self.fleet.get(key), diagnosis, now, keep_until), now
        )

    def _failed(
        self,
        name: str,
        connection_id: str,
        code: str,
        message: str,
        where: Mapping[str, str],
    ) -> None:
        self.metrics.diagnoses_failed.labels(name, code).inc()
        self._condition(name, connection_id, message, where, code)

    def _condition(
        self,
        name: str,
        connection_id: str,
        problem: str | None,
        where: Mapping[str, str],
        code: str = "",
    ) -> None:
        """Log a connection's diagnosis problem when it starts or changes, not every time."""
        slot = (name, connection_id)
        previous = self._conditions.get(slot)
        condition = code if problem is not None else None
        if condition == previous:
            return
        if condition is None:
            del self._conditions[slot]
            log.info("scheduled diagnoses recovered", extra={"fields": dict(where)})
        else:
            self._conditions[slot] = condition
            log.warning(problem, extra={"fields": {**where, "code": code}})
