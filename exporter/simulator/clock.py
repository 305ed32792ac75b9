"""Time for the simulator: an injectable clock and the API's time format.

Everything that depends on time (diagnosis progress, drift, throttling windows, signature
dates, nonce windows) reads one clock, so tests drive time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds since the epoch, like `time.time`."""

API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_api_time(epoch_seconds: float) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` in UTC, as the API writes `BeginTime` and `x-acs-date`."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime(API_TIME_FORMAT)


def parse_api_time(value: str) -> float:
    """Read `YYYY-MM-DDThh:mm:ssZ`; raise ValueError on anything else."""
    return datetime.strptime(value, API_TIME_FORMAT).replace(tzinfo=UTC).timestamp()


class ManualClock:
    """A clock that moves only when told to: `clock.advance(90)`."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
