"""The exporter's own metrics: API calls, parse errors, scheduled diagnoses, credentials,
admin requests, build info, and the standard `process_*` and `python_info`.

They live in a `prometheus_client` registry of their own, apart from the per-gateway data
(which the exposition module renders from snapshots): their cardinality is small and they
change on every call, so the stock client library renders them well. The `*_created`
series the library adds to counters and histograms are left out: nothing reads them, and
each doubles a counter's series.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import Metric

from exporter import __version__
from exporter.telemetry.loop_lag import LAG_BUCKETS

API_DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _RegistryWithoutCreated(CollectorRegistry):
    """A registry whose families carry no `*_created` samples, in either text format."""

    def collect(self) -> Iterable[Metric]:
        for family in super().collect():
            if family.type in ("counter", "histogram", "summary", "gaugehistogram"):
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class SelfMetrics:
    """One set of self-metrics; tests make their own to stay independent."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = _RegistryWithoutCreated(auto_describe=True)
        self.api_requests = Counter(
            "aliyun_vpn_api_requests_total",
            "HTTP requests sent to the VPC API, retries included (each counts against the quota).",
            ["action"],
            registry=self.registry,
        )
        self.api_failures = Counter(
            "aliyun_vpn_api_request_failures_total",
            "Failed VPC API requests by the cloud's error Code, or Timeout, NetworkError, "
            "InvalidResponse, other.",
            ["action", "code"],
            registry=self.registry,
        )
        self.api_duration = Histogram(
            "aliyun_vpn_api_request_duration_seconds",
            "Duration of single VPC API HTTP requests.",
            ["action"],
            buckets=API_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.parse_errors = Counter(
            "aliyun_vpn_description_parse_errors_total",
            "DiagnoseResultDescription payloads that could not be read, by item.",
            ["item"],
            registry=self.registry,
        )
        self._clock_offset: Gauge | None = None
        self.shape_drift = Counter(
            "aliyun_vpn_description_shape_drift_total",
            "DiagnoseResultDescription payloads read despite an unexpected form, by item and "
            "kind (unknown_key, number_as_string, double_encoded, ...). Never also counted "
            "as a parse error.",
            ["item", "kind"],
            registry=self.registry,
        )
        self.admin_requests = Counter(
            "aliyun_vpn_admin_requests_total",
            "Requests to the admin API by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.admin_failures = Counter(
            "aliyun_vpn_admin_request_failures_total",
            "Admin API requests that did not succeed, by operation and reason.",
            ["operation", "reason"],
            registry=self.registry,
        )
        self.diagnoses_started = Counter(
            "aliyun_vpn_diagnoses_started_total",
            "Diagnoses the exporter started on its schedule (DiagnoseVpnGateway), by target.",
            ["target"],
            registry=self.registry,
        )
        self.diagnoses_finished = Counter(
            "aliyun_vpn_diagnoses_finished_total",
            "Scheduled diagnoses read back with every item finished, by target.",
            ["target"],
            registry=self.registry,
        )
        self.diagnoses_timed_out = Counter(
            "aliyun_vpn_diagnoses_timed_out_total",
            "Scheduled diagnoses still unfinished when diagnose.timeout ran out, by target.",
            ["target"],
            registry=self.registry,
        )
        self.diagnoses_failed = Counter(
            "aliyun_vpn_diagnoses_failed_total",
            "Scheduled diagnoses that could not be started or read, by target and error code.",
            ["target", "code"],
            registry=self.registry,
        )
        self.credentials_success = Gauge(
            "aliyun_vpn_credentials_success",
            "1 if the credentials profile resolved the last time it was needed, else 0.",
            ["profile"],
            registry=self.registry,
        )
        self.config_reload_success = Gauge(
            "aliyun_vpn_config_last_reload_successful",
            "1 if the last configuration reload (SIGHUP or POST /-/reload) succeeded, else 0 "
            "(the previous configuration keeps running).",
            registry=self.registry,
        )
        self.config_reload_timestamp = Gauge(
            "aliyun_vpn_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (at start or by a reload).",
            registry=self.registry,
        )
        self.event_loop_lag = Histogram(
            "aliyun_vpn_event_loop_lag_seconds",
            "How much later than due the exporter's event loop ran a periodic probe timer "
            "(a stall delays polls, absorbing results and scrapes alike).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.build_info = Gauge(
            "aliyun_vpn_build_info",
            "Version of the exporter and of Python it runs on; always 1.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._state_restored: Gauge | None = None

    def state_restored(self, at: float) -> None:
        """Export `aliyun_vpn_state_restored_timestamp_seconds` (absent until a state file
        was restored)."""
        if self._state_restored is None:
            self._state_restored = Gauge(
                "aliyun_vpn_state_restored_timestamp_seconds",
                "When the latest-known state was restored from the state file at start.",
                registry=self.registry,
            )
        self._state_restored.set(at)

    def set_clock_offset(self, seconds: float) -> None:
        """Export `aliyun_vpn_clock_offset_seconds` (absent until the first measurement, so
        a `0` is never a guess)."""
        if self._clock_offset is None:
            self._clock_offset = Gauge(
                "aliyun_vpn_clock_offset_seconds",
                "Host clock minus the Date header of the VPC API's last answer, in seconds "
                "(positive: the host is ahead). The API refuses requests 15 minutes off.",
                registry=self.registry,
            )
        self._clock_offset.set(seconds)
