"""Per-action throttling, per (account, region, action), over a sliding 60-second window.

A throttled call answers HTTP 400 `Throttling.User`, by default with `x-acs-retry-after`
in **milliseconds** (an integer): that is how the official SDK reads the header (its retry
policy sleeps `retry_after / 1000` seconds and caps it at 120,000). Refused calls do not
count against the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from exporter.model.catalogue import PUBLISHED_LIMITS
from exporter.simulator.clock import Clock

WINDOW_SECONDS = 60.0

ASSUMED_LIMITS: dict[str, int] = {
    "DiagnoseVpnGateway": 60,
    "CreateVcoRouteEntry": 60,
    "DescribeVpnGateways": 600,
}
"""ASSUMPTION: FACTS says these limits are unknown; DESIGN fixes these values for the simulator."""

DEFAULT_LIMITS: dict[str, int] = {**PUBLISHED_LIMITS, **ASSUMED_LIMITS}


class RateLimiter:
    """Admits at most `limits[action]` calls per window for each (account, region, action)."""

    def __init__(self, limits: Mapping[str, int], clock: Clock) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._admitted: dict[tuple[str, str, str], deque[float]] = {}

    def acquire(self, account: str, region: str, action: str) -> float | None:
        """Admit a call (None), or return the seconds until one would be admitted."""
        limit = self.limits.get(action)
        if limit is None:
            return None
        now = self._clock()
        admitted = self._admitted.setdefault((account, region, action), deque())
        cutoff = now - WINDOW_SECONDS
        while admitted and admitted[0] <= cutoff:
            admitted.popleft()
        if len(admitted) >= limit:
            return admitted[0] + WINDOW_SECONDS - now
        admitted.append(now)
        return None
