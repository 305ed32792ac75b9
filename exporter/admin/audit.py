"""The admin API's record of what was asked and how it ended: the audit log and the
request and failure counters.

Every attempt to create a route writes exactly one `audit` line on the
`exporter.admin.audit` logger, whether it succeeded, was refused (unauthenticated, too
large, half sent, invalid...) or failed, with who asked, from where, which connection and
route, the outcome and the cloud's RequestId. Credentials never appear: a caller is named
by its basic auth user or bearer token name. The gate (`exporter.admin.auth`) opens a
`CreateAttempt` for each such request and writes its line when the request ends; whoever
learns how it ended (the gate itself, the API's handlers) settles it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger("exporter.admin.audit")

ROUTES_PATH = re.compile(r"/api/v1/vpn-connections/[^/]+/routes")
OPENAPI_PATH = "/api/v1/openapi.json"


def operation_of(method: str, path: str) -> str:
    """The `operation` label of a request: `create_route`, `list_routes`, `openapi` or
    `other` (a fixed set, whatever clients send).

    Starlette's route patterns end in `$`, which also matches before a final newline: a
    path ending in `%0A` would reach the routes' handlers, so it counts as their operation
    (the gate refuses it, and audits it as the create attempt it is)."""
    if ROUTES_PATH.fullmatch(path.removesuffix("\n")):
        if method == "POST":
            return "create_route"
        if method == "GET":
            return "list_routes"
    elif path == OPENAPI_PATH and method == "GET":
        return "openapi"
    return "other"


ATTEMPT_STATE_KEY = "create_attempt"
"""Where the gate leaves a create request's `CreateAttempt` in the request state."""


@dataclass(slots=True)
class CreateAttempt:
    """The audit line of one create attempt, written once when the request ends."""

    fields: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None
    status: int | None = None

    def settle(self, outcome: str, status: int, fields: dict[str, Any] | None = None) -> None:
        """Record how the attempt ended (a later, better-informed call wins)."""
        self.outcome = outcome
        self.status = status
        self.fields.update(fields or {})


def attempt_of(state: dict[str, Any]) -> CreateAttempt | None:
    """The create attempt of a request, from its `scope["state"]`."""
    attempt = state.get(ATTEMPT_STATE_KEY)
    return attempt if isinstance(attempt, CreateAttempt) else None


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
            extra={
                "fields": {
                    "operation": "create_route",
                    "outcome": outcome,
                    "status": status,
                    **fields,
                }
            },
        )
