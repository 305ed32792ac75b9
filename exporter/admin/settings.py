"""Time limits and sizes of the admin API, with defaults for production.

Tests pass short values (and a fake clock) instead of sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass


class AdminSetupError(ValueError):
    """The admin API cannot start safely as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """How long the admin API waits, retries and remembers."""

    deadline: float = 60.0
    """Seconds one create may spend queueing behind other creates on its connection,
    waiting for the connection to leave `updating`, and calling CreateVcoRouteEntry (every
    attempt included); past it the answer is 504 (outcome unknown)."""
    max_create_attempts: int = 4
    """CreateVcoRouteEntry calls one admin request makes at most (the first and retries)."""
    wait_timeout: float = 120.0
    """Seconds `?wait=true` waits for the connection to leave `updating` (then 202)."""
    poll_interval: float = 2.0
    """Seconds between DescribeVpnConnections calls while waiting on a connection."""
    retry_base: float = 1.0
    retry_cap: float = 10.0
    """Full-jitter backoff between create attempts: up to min(cap, base * 2**n) seconds
    (at least the cloud's `x-acs-retry-after`)."""
    retry_after: float = 5.0
    """`Retry-After` of a 503 when the cloud gave no hint."""
    idempotency_ttl: float = 24 * 3600.0
    idempotency_max_entries: int = 10_000
    max_body_bytes: int = 16 * 1024
    stop_grace: float = 30.0
    """Seconds `AdminServer.stop` lets requests in flight finish before cancelling them."""
    max_route_pages: int = 100
    """DescribeVcoRouteEntries pages (of 50) read at most for one listing."""
