"""Benchmark 5: budget adherence. 20 regions x 50 gateways and one region of 1,000, the
simulator enforcing the published limit (120 calls per minute per account and region),
a 5-minute interval everywhere.

Time is compressed: watching a 10-minute effective interval in real time would take the
whole run. Both sides are scaled by the same factor (10 by default) and nothing else is
changed: the simulator keeps the published limit of 120 calls but over a 6-second window
(`benchmarks.budget_sim`), and the exporter (the real command line, its own process)
gets a 30-second interval and the same share of that limit it would take by default
(80 %: `96/6s` instead of `96/min`). Figures are converted back to real time in the table.
Compression makes pacing harder, not easier: every fixed cost (an HTTP round trip, a
timer's lateness) weighs ten times as much against the shorter spacing.

Measured from the simulator's journal over a steady-state window after one small-region
interval: calls per region and second, Throttling answers, and for gateways polled twice
the time between their polls; from the exporter: its effective-interval gauges and its
start-up warning.
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_footprint import http_status, write_config
from benchmarks.budget_sim import generated_ids, generator_regions
from benchmarks.feed import regions_of
from benchmarks.procs import Child, free_port
from benchmarks.report import Row, Section
from benchmarks.scraping import Scraper

PUBLISHED_LIMIT = 120
"""GetVpnGatewayDiagnoseResult calls per 60 s per account and region."""
BUDGET_SHARE = 0.8
USAGE_TARGET = 0.95
INTERVAL_TOLERANCE = 0.10
MAX_CALLS_PER_SECOND = 3
WARNING = "cannot poll every gateway of the target within its interval"


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    big_gateways: int = 1000
    small_regions: int = 20
    small_gateways: int = 50
    interval: float = 300.0
    time_scale: float = 10.0
    warmup: float = 35.0
    """Compressed seconds before the window: one small-region interval and its jitter."""
    window: float = 60.0
    """Compressed seconds measured (10 minutes of real time at scale 10)."""


def _effective_intervals(body: bytes) -> dict[str, tuple[float, float]]:
    """target → (configured, effective) interval, from the exporter's gauges."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for line in body.decode().splitlines():
        for name in (
            "aliyun_vpn_poll_interval_seconds",
            "aliyun_vpn_poll_effective_interval_seconds",
        ):
            if line.startswith(name + "{"):
                target = line.split('target="', 1)[1].split('"', 1)[0]
                values[target][name] = float(line.rsplit(" ", 1)[1])
    return {
        target: (
            v["aliyun_vpn_poll_interval_seconds"],
            v["aliyun_vpn_poll_effective_interval_seconds"],
        )
        for target, v in values.items()
    }


def _journal(port: int) -> list[list[Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/_bench/journal")
    rows: list[list[Any]] = json.loads(connection.getresponse().read())
    connection.close()
    return rows


def _measured_interval(calls: list[list[Any]], region: str) -> float | None:
    """Median time between two successful polls of the same gateway of `region`."""
    last: dict[str, float] = {}
    gaps = []
    for at, call_region, gateway, code in calls:
        if call_region != region or code is not None:
            continue
        if gateway in last:
            gaps.append(at - last[gateway])
        last[gateway] = at
    return statistics.median(gaps) if gaps else None


def run(settings: BudgetSettings) -> Section:
    workdir = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    try:
        return _run(settings, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: BudgetSettings, workdir: Path) -> Section:
    section = Section("5. budget adherence")
    s = settings
    scale = s.time_scale
    regions = regions_of(1 + s.small_regions)
    big, small = regions[0], regions[1:]
    gateways = {big: s.big_gateways, **{region: s.small_gateways for region in small}}
    listed = generator_regions(gateways)
    total = sum(gateways.values())
    by_region = generated_ids(listed, total)
    budget_calls = int(PUBLISHED_LIMIT * BUDGET_SHARE)
    window_seconds = 60.0 / scale
    rate = budget_calls / window_seconds  # calls per compressed second
    config = workdir / "config.yml"
    sim_argv = [
        "-m",
        "benchmarks.budget_sim",
        f"--listed={','.join(listed)}",
        f"--total={total}",
        f"--time-scale={scale:g}",
    ]
    with Child("budget-simulator", sim_argv) as sim:
        sim_port = sim.ready()["port"]
        write_config(
            config,
            f"http://127.0.0.1:{sim_port}",
            by_region,
            f"{budget_calls}/{window_seconds:g}s",
            interval=f"{s.interval / scale:g}s",
        )
        port = free_port()
        argv = [
            "-m",
            "exporter",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warning",
        ]
        with Child("exporter-budget", argv) as exporter:
            while http_status(port, "/readyz") != 200:
                exporter.check_alive()
                time.sleep(0.01)
            started = time.time()
            end = started + s.warmup + s.window
            while time.time() < end + 0.5:
                exporter.check_alive()
                time.sleep(0.5)
            body = Scraper(port).scrape("plain").body
            calls = _journal(sim_port)
            log = exporter.log_text()
    window_start = started + s.warmup
    in_window = [c for c in calls if window_start <= c[0] < window_start + s.window]
    intervals = _effective_intervals(body)
    target_of = {region: f"default/{region}" for region in regions}

    # big region: budget use, interval, warning
    big_calls = sum(1 for c in in_window if c[1] == big)
    usage = big_calls / (rate * s.window)
    section.add(
        Row(
            f"{big} ({s.big_gateways:,} gateways): share of the budget used in steady state",
            f"{usage:.1%} ({big_calls / s.window * 60 / scale:.1f} of {budget_calls} calls/min)",
            "",
            "",
            f"≥ {USAGE_TARGET:.0%}",
            usage >= USAGE_TARGET,
        )
    )
    throttled = Counter(c[1] for c in in_window if c[3] and c[3].startswith("Throttling"))
    throttled_all = sum(1 for c in calls if c[3] and c[3].startswith("Throttling"))
    section.add(
        Row(
            "Throttling answers in steady state, all regions",
            f"{sum(throttled.values())} (whole run: {throttled_all})",
            "",
            "",
            "0",
            not throttled,
        )
    )
    for label, region in (("big", big), ("small", small[0])):
        _, effective = intervals[target_of[region]]
        measured = _measured_interval(calls, region)
        truthful = (
            measured is not None and abs(measured - effective) <= INTERVAL_TOLERANCE * effective
        )
        section.add(
            Row(
                f"{region} ({label}): effective interval reported vs measured",
                f"{effective * scale:.0f} s reported, "
                + (f"{measured * scale:.0f} s measured" if measured else "not measured"),
                "",
                "",
                f"within {INTERVAL_TOLERANCE:.0%}",
                truthful,
            )
        )
    warned = [line for line in log.splitlines() if WARNING in line]
    big_warned = any(big in line for line in warned)
    small_warned = any(region in line for line in warned for region in small)
    section.add(
        Row(
            "start-up warning: big region warned, small ones not",
            f"{len(warned)} warning(s), big {'yes' if big_warned else 'no'}, "
            f"small {'yes' if small_warned else 'no'}",
            "",
            "",
            "big only",
            big_warned and not small_warned,
        )
    )

    # small regions: evenness
    per_second = Counter(int(c[0] - window_start) for c in in_window if c[1] != big)
    histogram = [per_second.get(second, 0) for second in range(int(s.window))]
    mean = statistics.mean(histogram)
    per_region = Counter((c[1], int(c[0] - window_start)) for c in in_window if c[1] != big)
    busiest = max(per_region.values(), default=0)
    expected = s.small_gateways / (s.interval / scale)
    section.add(
        Row(
            f"{s.small_regions} small regions: most calls by one region in any second",
            f"{busiest} (mean {expected:.2f}/s; a burst would be {s.small_gateways})",
            "",
            "",
            f"≤ {MAX_CALLS_PER_SECOND}",
            busiest <= MAX_CALLS_PER_SECOND,
        )
    )
    section.add(
        Row(
            f"{s.small_regions} small regions together: calls per second, max ÷ mean",
            f"{max(histogram) / mean:.2f} "
            f"(mean {mean:.1f}/s, stdev {statistics.pstdev(histogram):.1f})",
        )
    )
    section.note(
        f"time compressed {scale:g}x: interval {s.interval / scale:g} s, the simulator allowing "
        f"{PUBLISHED_LIMIT} calls per {window_seconds:g} s, the exporter's budget "
        f"{budget_calls}/{window_seconds:g}s; steady-state window: compressed seconds "
        f"{s.warmup:g}-{s.warmup + s.window:g} after ready ({s.window * scale / 60:g} real "
        "minutes); figures in the table are converted back to real time."
    )
    section.note(
        f"small regions, calls per second across all 20 (each second is {scale:g} s of real time):"
    )
    section.note("```\n" + _bars(histogram) + "\n```")
    if warned:
        section.note(f"start-up warning: `{warned[0].strip()[:300]}`")
    return section


def _bars(histogram: list[int]) -> str:
    top = max(histogram) or 1
    width = 40
    return "\n".join(
        f"{second:3d}s {count:4d} {'#' * math.ceil(count / top * width)}"
        for second, count in enumerate(histogram)
    )
