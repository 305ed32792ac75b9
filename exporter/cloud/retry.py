"""When to retry a failed API call, and how long to wait first.

Retried: `Throttling*`, `ServiceUnavailable`, `VpnGateway.Configuring`, any 5xx, network
errors and timeouts. Never retried: authentication and permission errors and `*.NotFound`,
whatever their status, since asking again cannot change the answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from exporter.cloud.errors import ApiError, CloudError

RETRY_AFTER_HEADER = "x-acs-retry-after"

_RETRY_AFTER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", re.IGNORECASE)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from an `x-acs-retry-after` value; None if absent or unreadable.

    The API reference does not name the unit. The official SDK reads the header as an
    integer and sleeps that many milliseconds (`darabonba` backoff), and the simulator
    follows it, so a bare number is milliseconds. An explicit unit wins: `2s`, `500ms`.
    """
    if value is None:
        return None
    match = _RETRY_AFTER.fullmatch(value)
    if match is None:
        return None
    number = float(match.group(1))
    seconds = number if (match.group(2) or "").lower() == "s" else number / 1000.0
    return seconds if seconds > 0 else None


def is_retryable(error: ApiError) -> bool:
    """Whether the same call may succeed later."""
    if isinstance(error, CloudError):
        code = error.code or ""
        if error.auth_failure or code.endswith(".NotFound"):
            return False
        return error.throttled or error.transient
    return error.transient


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff: wait uniform(0, min(cap, base * 2**n)) before retry n.

    A server's `x-acs-retry-after` is a floor for the wait; one longer than
    `max_retry_after` ends the call instead (the scheduler tries again next cycle).
    """

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_base <= 0 or self.backoff_cap <= 0:
            raise ValueError(f"invalid retry policy: {self}")

    def delay(
        self, retries_done: int, error: ApiError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the call must fail now."""
        if retries_done >= self.max_retries or not is_retryable(error):
            return None
        if error.retry_after is not None and error.retry_after > self.max_retry_after:
            return None
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0**retries_done)
        return max(error.retry_after or 0.0, rand() * ceiling)
