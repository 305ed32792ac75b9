"""The admin API's record of what was asked and how it ended: the audit log and the
request and failure counters.

Every attempt to create a route writes one `audit` line on the `exporter.admin.audit`
logger, whether it succeeded, was refused or failed, with who asked, from where, which
connection and route, the outcome and the cloud's RequestId. Credentials never appear:
a caller is named by its basic auth user or bearer token name.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger("exporter.admin.audit")

ROUTES_PATH = re.compile(r"/api/v1/vpn-connections/[^/]+/routes")
OPENAPI_PATH = "/api/v1/openapi.json"


def operation_of(method: str, path: str) -> str:
    """The `operation` label of a request: `create_route`, `list_routes`, `openapi` or
    `other` (a fixed set, whatever clients send)."""
    if ROUTES_PATH.fullmatch(path):
        if method == "POST":
            return "create_route"
        if method == "GET":
            return "list_routes"
    elif path == OPENAPI_PATH and method == "GET":
        return "openapi"
    return "other"


class Audit:
    """Counts admin requests and failures, and writes audit lines."""

    def __init__(self, metrics: SelfMetrics) -> None:
        self._metrics = metrics

    def request(self, operation: str) -> None:
        self._metrics.admin_requests.labels(operation).inc()

    def failure(self, operation: str, reason: str) -> None:
        """Count a failure; `reason` is a problem type's `reason` (a fixed set)."""
        self._metrics.admin_failures.labels(operation, reason).inc()

    def route_attempt(self, outcome: str, status: int, fields: dict[str, Any]) -> None:
        """One line for one attempt to create a route. `outcome` is `created`, `pending`,
        `dry_run`, `replayed` or a problem's reason (`route_exists`, `unauthenticated`...)."""
        level = logging.INFO if status < 400 else logging.WARNING
        log.log(
            level,
            "route create attempt",
            extra={"fields": {"outcome": outcome, "status": status, **fields}},
        )
