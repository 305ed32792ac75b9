"""One poll of one gateway: fetch its latest diagnosis and turn the answer into a record.

DESIGN's failure semantics decide what each answer means: which codes are still a
successful poll (the API answered as documented about the gateway), which keep the old data
until it goes stale, and which are failures. Each condition is logged once when it starts
and once when it ends, not once per poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from exporter.clock import Clock
from exporter.cloud.actions import (
    DIAGNOSIS_FAILED,
    NO_DIAGNOSIS,
    NO_SUCH_GATEWAY,
    RESULT_ACTION,
    DiagnosisSource,
    is_our_bug,
)
from exporter.cloud.errors import (
    ApiError,
    CloudError,
    CredentialsError,
    InvalidResponse,
    clock_problem_message,
)
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import (
    GatewayKey,
    GatewayRecord,
    PollResult,
    with_diagnosis,
    with_failed_diagnosis,
    with_failed_poll,
    with_missing_gateway,
    without_diagnosis,
)
from exporter.model.diagnosis import Diagnosis
from exporter.model.parser import ResponseShapeError, parse_diagnosis
from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

MAX_LOGGED_SHAPES = 1000
"""Distinct drift shapes logged per process: a misbehaving API cannot flood the log."""


class Poller:
    """Polls gateways and records the outcomes in the fleet."""

    def __init__(self, fleet: Fleet, metrics: SelfMetrics, clock: Clock) -> None:
        self.fleet = fleet
        self.metrics = metrics
        self.clock = clock
        self._conditions: dict[GatewayKey, str] = {}
        self._parse_failures: dict[GatewayKey, frozenset[str]] = {}
        self._shapes_seen: set[tuple[str, str]] = set()

    def retain_targets(self, names: set[str]) -> None:
        """Forget the conditions of gateways whose target left the configuration."""
        for remembered in (self._conditions, self._parse_failures):
            for key in [key for key in remembered if key.target not in names]:
                del remembered[key]

    async def poll(
        self,
        key: GatewayKey,
        client: DiagnosisSource,
        launched: Callable[[], None] | None = None,
    ) -> PollResult:
        """Poll one gateway once; never raises for API trouble. `launched` is called when
        the rate budget grants the poll's first attempt (see the scheduler)."""
        started = self.clock.monotonic()
        # The record is read after the call, not before: other writers (discovery, the
        # connection listing, scheduled diagnoses) may have changed it meanwhile.
        try:
            payload = await client.get_vpn_gateway_diagnose_result(
                vpn_gateway_id=key.vpn_gateway_id, on_launch=launched
            )
            diagnosis = parse_diagnosis(payload)
        except CloudError as error:
            record, result = self._cloud_error(self.fleet.get(key), error, started)
        except ResponseShapeError as error:
            self.metrics.api_failures.labels(RESULT_ACTION, InvalidResponse.metric_code).inc()
            result = self._result(False, started, InvalidResponse.metric_code, str(error))
            record = with_failed_poll(self.fleet.get(key), result)
            self._condition(key, "InvalidResponse", f"unreadable diagnosis response: {error}")
        except ApiError as error:
            result = self._result(False, started, error.metric_code, str(error))
            record = with_failed_poll(self.fleet.get(key), result)
            # A failing credentials profile is logged once for the profile
            # (exporter.cloud.profiles), not once per gateway.
            level = logging.DEBUG if isinstance(error, CredentialsError) else logging.WARNING
            self._condition(key, error.metric_code, f"poll failed: {error}", level=level)
        else:
            result = self._result(True, started)
            record = with_diagnosis(self.fleet.get(key), diagnosis, result)
            self._report_descriptions(key, diagnosis)
            self._condition(key, "", "")
        self.fleet.update(record, result.finished_at)
        return result

    def _cloud_error(
        self, record: GatewayRecord, error: CloudError, started: float
    ) -> tuple[GatewayRecord, PollResult]:
        key = record.key
        code = error.code or "other"
        if code == NO_DIAGNOSIS:
            result = self._result(True, started, code, str(error))
            self._condition(key, code, "gateway has no diagnosis yet", level=logging.INFO)
            return without_diagnosis(record, result), result
        if code in DIAGNOSIS_FAILED:
            result = self._result(True, started, code, str(error))
            self._condition(key, code, f"the latest diagnosis failed, keeping old data: {error}")
            return with_failed_diagnosis(record, result), result
        result = self._result(False, started, code, str(error))
        if code == NO_SUCH_GATEWAY:
            why = f"gateway does not exist, check the configuration: {error}"
            self._condition(key, code, why)
            return with_missing_gateway(record, result), result
        if error.clock_problem:
            why = f"{clock_problem_message(error)}: {error}"
        elif error.advice is not None:
            why = f"not allowed: {error.advice}: {error}"
        elif is_our_bug(code):
            why = f"the exporter sent a wrong request (a bug, please report it): {error}"
        else:
            why = f"poll failed: {error}"
        self._condition(key, code, why)
        return with_failed_poll(record, result), result

    def _result(
        self, success: bool, started: float, code: str | None = None, error: str | None = None
    ) -> PollResult:
        return PollResult(
            success=success,
            finished_at=self.clock.time(),
            duration=self.clock.monotonic() - started,
            error_code=code,
            error=error,
        )

    def _condition(
        self, key: GatewayKey, condition: str, message: str, level: int = logging.WARNING
    ) -> None:
        """Log a gateway's condition when it changes, not on every poll."""
        previous = self._conditions.get(key, "")
        if condition == previous:
            return
        fields: Mapping[str, str] = {
            "target": key.target,
            "region_id": key.region_id,
            "vpn_gateway_id": key.vpn_gateway_id,
        }
        if condition:
            self._conditions[key] = condition
            log.log(level, message, extra={"fields": {**fields, "code": condition}})
        else:
            del self._conditions[key]
            log.info("poll recovered", extra={"fields": {**fields, "previous_code": previous}})

    def _report_descriptions(self, key: GatewayKey, diagnosis: Diagnosis) -> None:
        """Count every unreadable description and every drift; log when the set of failing
        items of a gateway changes, and each new shape of drift once."""
        bounds = self.fleet.labels
        for item in diagnosis.items:
            item_label = bounds.item(item.name)
            if item.parse_error:
                self.metrics.parse_errors.labels(item_label).inc()
            for drift in item.drift:
                self.metrics.shape_drift.labels(item_label, drift.kind.value).inc()
                self._log_new_shape(key, diagnosis, item.name, str(drift))
        failing = frozenset(item.name for item in diagnosis.items if item.parse_error)
        if failing == self._parse_failures.get(key, frozenset()):
            return
        self._parse_failures[key] = failing
        for item in diagnosis.items:
            if item.parse_error:
                log.warning(
                    "unreadable diagnosis item description",
                    extra={
                        "fields": {
                            "vpn_gateway_id": key.vpn_gateway_id,
                            "item": item.name,
                            "request_id": diagnosis.request_id,
                            "error": item.parse_error,
                        }
                    },
                )

    def _log_new_shape(self, key: GatewayKey, diagnosis: Diagnosis, item: str, shape: str) -> None:
        """Log a drift shape (item, kind, key names: never values) the first time it is seen
        in this process, up to `MAX_LOGGED_SHAPES` shapes."""
        if (item, shape) in self._shapes_seen or len(self._shapes_seen) >= MAX_LOGGED_SHAPES:
            return
        self._shapes_seen.add((item, shape))
        log.warning(
            "diagnosis item description read despite an unexpected form: please report it "
            '(README, "Report an API shape")',
            extra={
                "fields": {
                    "vpn_gateway_id": key.vpn_gateway_id,
                    "item": item,
                    "shape": shape,
                    "request_id": diagnosis.request_id,
                }
            },
        )
