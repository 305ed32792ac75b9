"""Benchmarks 2 and 3: scraping a 10,000-gateway exporter, and absorbing new results.

Three servers, each in its own process:
- ours: `benchmarks.exporter_server`, the real `Exporter` loaded with generated results;
- limit: `benchmarks.static_server`, ours' scraped bytes served as static files by the same
  stack (checked by hash on every timed scrape);
- baseline: `benchmarks.baseline_server`, the same series as `prometheus_client` gauges
  behind `start_http_server` (checked: the same series with the same values).

Steady state: ours and the limit are scraped alternately, so load from anything else on
the machine hits both alike. After a burst: before each scrape of ours, a burst of new
results (a few per cent of the fleet, what a 10,000-gateway fleet polled every 5 minutes
absorbs between two 15-second scrapes) lands in the exporter first; the baseline renders
everything per scrape anyway, so its steady-state figures stand for it there.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import Child
from benchmarks.report import Row, Section, ms, ratio
from benchmarks.scraping import FORMATS, Scraper, Timing, gunzip_single_member, series
from exporter.exposition.render import FAMILIES

FASTER_TARGET = 1 / 20
LIMIT_TARGETS = {"plain": 5.0, "openmetrics": 5.0, "gzip": 1.3}
"""Ours ÷ the same bytes as a static file (issue 13): the plain text is inflated from the
cached gzip segments as it streams, so the uncompressed formats may cost a few times the
static file; gzip, what Prometheus asks for, stays close to it."""
GZIP_SIZE_TARGET = 1.3
UPDATE_TARGET = 0.001


@dataclass(frozen=True, slots=True)
class ScrapeSettings:
    gateways: int = 10_000
    regions: int = 10
    scrapes: int = 30
    """Scrapes of ours and of the limit per text format (plain, OpenMetrics)."""
    gzip_scrapes: int = 100
    """gzip scrapes take ~3 ms and vary more in relative terms: more of them."""
    baseline_scrapes: int = 5
    """prometheus_client needs 5-10 s per scrape here; 5 settle a median 50x away."""
    burst: int = 500
    update_rounds: int = 3
    update_count: int = 2_000


def _seconds(value: float) -> str:
    return ms(value) if value < 1 else f"{value:.2f} s"


def _timing(timing: Timing) -> str:
    return f"{_seconds(timing.median)} (p99 {_seconds(timing.p99)})"


class ScrapeBench:
    """Runs both benchmarks against one set of servers."""

    def __init__(self, settings: ScrapeSettings, scrape: Section, update: Section) -> None:
        self.settings = settings
        self.scrape_section = scrape
        self.update_section = update
        self.files = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
        self.bodies: dict[str, bytes] = {}
        self.digests: dict[str, str] = {}

    def run(self) -> None:
        s = self.settings
        with Child(
            "exporter",
            [
                "-m",
                "benchmarks.exporter_server",
                f"--gateways={s.gateways}",
                f"--regions={s.regions}",
            ],
        ) as ours_child:
            ready = ours_child.ready(timeout=300)
            load = ready["load"]
            self.update_section.add(
                Row(
                    f"first load of {load['count']:,} gateways (CPU per gateway)",
                    ms(load["cpu"] / load["count"]),
                )
            )
            ours = Scraper(ready["port"])
            self._capture(ours)
            with Child("static", self._static_argv()) as static_child:
                static = Scraper(static_child.ready()["port"])
                self.children = (ours_child, static_child)
                base, baseline_ready = self._baseline_all()
                steady = {fmt: self._steady(fmt, ours, static) for fmt in FORMATS}
                for fmt in FORMATS:
                    self._scrape_rows(fmt, steady[fmt], base[fmt])
                self._update_cost(ours_child)
                for fmt in FORMATS:
                    self._after_burst(fmt, ours_child, ours, static, base[fmt])
                memory = ours_child.command("memory")
                self.scrape_section.note(
                    f"ours: {s.gateways:,} gateways in {s.regions} regions, "
                    f"{len(series(self.bodies['plain'], _names())):,} per-gateway series, "
                    f"{len(self.bodies['plain']) / 1e6:.1f} MB plain, "
                    f"{len(self.bodies['gzip']) / 1e6:.2f} MB gzip; "
                    f"exporter process RSS {memory['rss_mb']:.0f} MB "
                    f"(peak {memory['peak_rss_mb']:.0f} MB, including the in-process simulator "
                    "that generates its results); baseline process RSS "
                    f"{baseline_ready['rss_mb']:.0f} MB after building its registry in "
                    f"{baseline_ready['build_seconds']:.1f} s."
                )

    def _count(self, fmt: str) -> int:
        return self.settings.gzip_scrapes if fmt == "gzip" else self.settings.scrapes

    def _static_argv(self) -> list[str]:
        return [
            "-m",
            "benchmarks.static_server",
            f"--plain={self.files / 'plain'}",
            f"--openmetrics={self.files / 'openmetrics'}",
            f"--gzip={self.files / 'gzip'}",
        ]

    def _capture(self, ours: Scraper) -> None:
        """Ours' bytes in each format, saved for the static server; gzip must be one member
        holding exactly the OpenMetrics text."""
        for fmt in FORMATS:
            body = ours.scrape(fmt).body
            self.bodies[fmt] = body
            (self.files / fmt).write_bytes(body)
            self.digests[fmt] = _digest(_content(fmt, body))
        if _steady(gunzip_single_member(self.bodies["gzip"])) != _steady(
            self.bodies["openmetrics"]
        ):
            raise AssertionError("the gzip body does not hold the OpenMetrics text")
        text = self.bodies["openmetrics"]
        level9 = len(gzip.compress(text, 9))
        ours = len(self.bodies["gzip"])
        self.scrape_section.add(
            Row(
                "gzip body vs the same text gzipped whole at level 9",
                f"{ours / 1e6:.2f} MB",
                f"{level9 / 1e6:.2f} MB",
                ratio(ours, level9),
                f"≤ {GZIP_SIZE_TARGET}",
                ours <= GZIP_SIZE_TARGET * level9,
            )
        )
        per_gateway = series(self.bodies["plain"], _names())
        gateways = {key for key in per_gateway if any(p.startswith("vpn_gateway_id=") for p in key)}
        self.scrape_section.add(
            Row(
                "per-gateway series per gateway (connections and tunnels included)",
                f"{len(gateways) / self.settings.gateways:.1f}",
            )
        )

    def _check_same_series(self, baseline: Scraper) -> None:
        names = _names()
        ours = series(self.bodies["plain"], names)
        theirs = series(baseline.scrape("plain").body, names)
        if ours != theirs:
            missing = len(ours.keys() - theirs.keys())
            extra = len(theirs.keys() - ours.keys())
            raise AssertionError(
                f"baseline differs: {missing} series missing, {extra} extra, "
                f"{sum(1 for k in ours.keys() & theirs.keys() if ours[k] != theirs[k])} values"
            )
        self.scrape_section.note(
            f"checked: the baseline exposes the same {len(ours):,} series with the same values; "
            "the limit served text with the same SHA-256 as ours on every steady-state scrape "
            "(process_* samples aside, which move by themselves)."
        )

    def _steady(self, fmt: str, ours: Scraper, static: Scraper) -> tuple[Timing, Timing]:
        for _ in range(2):  # warm-up: connections, caches, allocator
            ours.scrape(fmt)
            static.scrape(fmt)
        ours_times, static_times = [], []
        cpu = [child.cpu_seconds() for child in self.children]
        count = self._count(fmt)
        for _ in range(count):
            a = ours.scrape(fmt)
            b = static.scrape(fmt)
            if self.digests[fmt] != _digest(_content(fmt, a.body)) or self.digests[fmt] != _digest(
                _content(fmt, b.body)
            ):
                raise AssertionError(f"{fmt}: a scrape returned other bytes than the static copy")
            ours_times.append(a.seconds)
            static_times.append(b.seconds)
        ours_cpu, static_cpu = (
            (child.cpu_seconds() - before) / count
            for child, before in zip(self.children, cpu, strict=True)
        )
        self.scrape_section.note(
            f"{fmt}: server CPU per scrape: ours {ms(ours_cpu)}, static file {ms(static_cpu)}"
        )
        return Timing(ours_times), Timing(static_times)

    def _baseline_all(self) -> tuple[dict[str, Timing], dict[str, Any]]:
        """The baseline's timings per format (NaN when `baseline_scrapes` is 0)."""
        n = self.settings.baseline_scrapes
        if n == 0:
            return {fmt: Timing([math.nan]) for fmt in FORMATS}, {
                "rss_mb": math.nan,
                "build_seconds": math.nan,
            }
        argv = ["-m", "benchmarks.baseline_server", "--exposition", str(self.files / "plain")]
        with Child("baseline", argv) as child:
            ready = child.ready(timeout=600)
            baseline = Scraper(ready["port"])
            self._check_same_series(baseline)
            timings = {
                fmt: Timing([baseline.scrape(fmt).seconds for _ in range(n)]) for fmt in FORMATS
            }
            baseline.close()
        return timings, ready

    def _scrape_rows(self, fmt: str, steady: tuple[Timing, Timing], base: Timing) -> None:
        ours, static = steady
        n, nb = self._count(fmt), self.settings.baseline_scrapes
        section = self.scrape_section
        section.add(
            Row(
                f"{fmt}: ours vs prometheus_client (median of {n} vs {nb})",
                _timing(ours),
                _timing(base),
                ratio(ours.median, base.median),
                "≤ 0.05 (≥ 20x faster)",
                ours.median <= FASTER_TARGET * base.median,
            )
        )
        section.add(
            Row(
                f"{fmt}: ours vs the same bytes as a static file (median of {n})",
                _timing(ours),
                _timing(static),
                ratio(ours.median, static.median),
                f"≤ {LIMIT_TARGETS[fmt]}",
                ours.median <= LIMIT_TARGETS[fmt] * static.median,
            )
        )

    def _update_cost(self, ours_child: Child) -> None:
        s = self.settings
        per_gateway = []
        for _ in range(s.update_rounds):
            answer = ours_child.command("absorb", count=s.update_count, timeout=300)
            per_gateway.append(answer["cpu"] / answer["count"])
        value = statistics.median(per_gateway)
        self.update_section.add(
            Row(
                f"CPU per absorbed result at {s.gateways:,} gateways "
                f"(median of {s.update_rounds} x {s.update_count:,})",
                ms(value),
                "",
                "",
                "≤ 1 ms",
                value <= UPDATE_TARGET,
            )
        )

    def _after_burst(
        self, fmt: str, ours_child: Child, ours: Scraper, static: Scraper, base: Timing
    ) -> None:
        s = self.settings
        ours_times, static_times = [], []
        for _ in range(self._count(fmt)):
            ours_child.command("absorb", count=s.burst)
            ours_times.append(ours.scrape(fmt).seconds)
            static_times.append(static.scrape(fmt).seconds)
        mine, limit = Timing(ours_times), Timing(static_times)
        section = self.update_section
        section.add(
            Row(
                f"{fmt}: scrape right after {s.burst} new results vs static file",
                _timing(mine),
                _timing(limit),
                ratio(mine.median, limit.median),
                f"≤ {LIMIT_TARGETS[fmt]}",
                mine.median <= LIMIT_TARGETS[fmt] * limit.median,
            )
        )
        section.add(
            Row(
                f"{fmt}: scrape right after {s.burst} new results vs prometheus_client",
                _timing(mine),
                _timing(base),
                ratio(mine.median, base.median),
                "≤ 0.05 (≥ 20x faster)",
                mine.median <= FASTER_TARGET * base.median,
            )
        )


def _names() -> set[str]:
    return {family.name for family in FAMILIES}


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def run(settings: ScrapeSettings) -> tuple[Section, Section]:
    scrape = Section("2. scrape at scale")
    update = Section("3. update cost")
    bench = ScrapeBench(settings, scrape, update)
    try:
        bench.run()
    finally:
        shutil.rmtree(bench.files, ignore_errors=True)
    return scrape, update


def _steady(text: bytes) -> bytes:
    """`text` without the `process_*` samples, which move between two scrapes by themselves
    (CPU time, memory)."""
    return b"\n".join(line for line in text.split(b"\n") if not line.startswith(b"process_"))


def _content(fmt: str, body: bytes) -> bytes:
    """What a scrape must repeat exactly: the text (unzipped), but its `process_*` samples."""
    return _steady(gunzip_single_member(body) if fmt == "gzip" else body)
