"""The event loop's lag is exported: a stall shows in `aliyun_vpn_event_loop_lag_seconds`."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import generate_latest

from exporter.telemetry.loop_lag import LoopLagProbe
from exporter.telemetry.self_metrics import SelfMetrics


def bucket(text: str, le: str) -> float:
    line = f'aliyun_vpn_event_loop_lag_seconds_bucket{{le="{le}"}} '
    return float(text.split(line, 1)[1].split("\n", 1)[0])


async def test_a_blocked_loop_shows_as_lag_in_the_histogram() -> None:
    metrics = SelfMetrics()
    probe = LoopLagProbe(metrics.event_loop_lag, interval=0.01)
    probe.start()
    await asyncio.sleep(0.05)  # a few probes on an idle loop
    time.sleep(0.3)  # a job that does not yield: the probe due meanwhile fires >= 0.29 s late
    await asyncio.sleep(0.05)
    probe.stop()
    text = generate_latest(metrics.registry).decode()
    count = float(text.split("aliyun_vpn_event_loop_lag_seconds_count ", 1)[1].split("\n")[0])
    assert count >= 2
    assert bucket(text, "0.25") < count  # the stall is in a bucket above 0.25 s
    assert bucket(text, "+Inf") == count


async def test_a_stopped_probe_observes_nothing_more() -> None:
    metrics = SelfMetrics()
    probe = LoopLagProbe(metrics.event_loop_lag, interval=0.01)
    probe.start()
    await asyncio.sleep(0.03)
    probe.stop()
    before = lag_lines(metrics)
    await asyncio.sleep(0.05)
    assert lag_lines(metrics) == before


def lag_lines(metrics: SelfMetrics) -> list[str]:
    """The histogram's samples (the registry's process_* samples move by themselves)."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if line.startswith("aliyun_vpn_event_loop_lag")]
