"""Test doubles: a clock the test moves instead of sleeping, and a counting credential
provider."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from exporter.cloud.keys import Credential


class FakeClock:
    """Wall and monotonic time that only move when the code under test sleeps or the test
    calls `advance`."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.wall = start
        self.mono = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # let tasks started before the sleep run at the old time
        self.advance(seconds)
        await asyncio.sleep(0)


@dataclass
class CountingCredentials:
    """A provider that always returns the same credential and counts how often it is asked
    (every signed attempt asks afresh)."""

    credential: Credential
    profile: str = "default"
    calls: int = 0

    async def get(self) -> Credential:
        self.calls += 1
        return self.credential


class ScaledClock:
    """Time that runs `factor` times faster than the real clock, for exporter and
    simulator alike: a minute of API quota passes in 60 / `factor` real seconds, while
    real HTTP still carries the calls. Slow machines only stretch the scaled durations."""

    def __init__(self, factor: float, start: float = 1_700_000_000.0) -> None:
        self.factor = factor
        self._real_start = time.monotonic()
        self._start = start

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real_start) * self.factor

    def time(self) -> float:
        return self._start + self._elapsed()

    def monotonic(self) -> float:
        return 1000.0 + self._elapsed()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.factor)
