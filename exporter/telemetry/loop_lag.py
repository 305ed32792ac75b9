"""How late the event loop runs a timer: the exporter's own stall detector.

Everything the exporter does (absorbing poll results, re-rendering gateways, serving
scrapes) shares one event loop; a job that runs long without yielding delays every other.
A timer is set every `PROBE_INTERVAL` seconds, and how much later than due it fires goes
into `aliyun_vpn_event_loop_lag_seconds`.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

PROBE_INTERVAL = 0.1
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLagProbe:
    """Observes the loop's lateness into a histogram while started."""

    def __init__(self, histogram: Histogram, interval: float = PROBE_INTERVAL) -> None:
        self.histogram = histogram
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start probing on the running loop (again after a `stop`)."""
        if self._handle is None:
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.histogram.observe(max(0.0, loop.time() - self._due))
        self._schedule(loop)
