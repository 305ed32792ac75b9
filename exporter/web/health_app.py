"""The health listener (`--web.health-listen-address`): `/healthz` and `/readyz` alone, in
plain HTTP, on loopback only.

The metrics listener's web config may require basic auth or client certificates of every
request; a probe has neither (a path cannot be exempted at the TLS layer). This listener
answers the probes without either, and only to the machine (or pod) itself: the
`healthcheck` subcommand asks it, from the Dockerfile's HEALTHCHECK and Kubernetes' exec
probes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

Check = Callable[[], tuple[bool, str]]
"""A probe: whether it passes, and one line saying why."""


def probe(check: Check) -> Callable[[Request], Any]:
    """An endpoint answering 200 or 503 with the check's line."""

    async def endpoint(_: Request) -> Response:
        ok, detail = check()
        return PlainTextResponse(detail + "\n", status_code=200 if ok else 503)

    return endpoint


def build_health_app(*, healthy: Check, ready: Check) -> ASGIApp:
    """The health listener's app: `/healthz` (liveness) and `/readyz` (readiness)."""
    return Starlette(routes=[Route("/healthz", probe(healthy)), Route("/readyz", probe(ready))])
