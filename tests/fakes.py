"""Test doubles for time: a clock the test moves instead of sleeping."""

from __future__ import annotations

import asyncio


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
