"""Benchmark 6: footprint and the first cycle, ours against the baseline revision.

The real command line (`python -m exporter --config.file=…`) polls N generated gateways
in 10 regions of a simulator process (no throttling), with the budget raised to 3,000
calls/min per region so that the first cycle lands as fast as the budget allows (some 20 s
at 10,000 gateways instead of 10 minutes). The same is done with the exporter as it was
before issue 13 (`BASELINE_REV`, extracted with `git archive`), in alternating rounds, and
each figure is the median of the rounds:

- start to ready: from spawning the command to the first `200` from `/readyz`;
- scrapes during the first cycle: plain and gzip scrapes, alternately, from ready until
  every gateway has been polled (p99 and the slowest);
- resident memory once every gateway has been polled and the listings are in, after a
  plain and a gzip scrape (RSS and the peak, VmHWM), and per series over the RSS of the
  same exporter with 2 gateways;
- the event loop's lag during the whole run, from ours' `aliyun_vpn_event_loop_lag_seconds`
  (the baseline has no such histogram);
- import of the start-up module (`exporter.process.run`) in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.feed import regions_of
from benchmarks.procs import REPO, Child, child_env, free_port, simulator
from benchmarks.report import Row, Section, ms, ratio
from benchmarks.scraping import Scraper, p99
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET

RSS_TARGET_MB = 200.0
READY_TARGET = 1.0
LAG_TARGET = 0.05
LOAD_GZIP_P99 = 1.0
LOAD_PLAIN_P99 = 2.0
LOAD_RATE_PER_REGION = "3000/min"
BASELINE_REV = "6071cd81368988c8740d08fc1382c6dd418c601d"
"""`main` before issue 13: the exporter this benchmark compares with."""


@dataclass(frozen=True, slots=True)
class FootprintSettings:
    gateways: int = 10_000
    regions: int = 10
    rounds: int = 3
    """Alternating rounds of ours and the baseline (loading the fleet each time)."""
    ready_runs: int = 3
    import_runs: int = 5
    baseline_rev: str | None = BASELINE_REV


def generated_ids(gateways: int, regions: list[str]) -> dict[str, list[str]]:
    """Gateway IDs per region as `exporter.simulator.generator` hands them out (round robin)."""
    by_region: dict[str, list[str]] = {region: [] for region in regions}
    for index in range(gateways):
        by_region[regions[index % len(regions)]].append(f"vpn-gen{index:07d}")
    return by_region


def write_config(
    path: Path, endpoint: str, by_region: dict[str, list[str]], rate: str, interval: str = "5m"
) -> None:
    """An ordinary YAML config: the demo key pair, one target per region."""
    config = {
        "credentials": {
            "default": {
                "source": "access_key",
                "access_key_id": DEMO_ACCESS_KEY_ID,
                "access_key_secret": DEMO_ACCESS_KEY_SECRET,
            }
        },
        "poll": {"interval": interval},
        "api": {"endpoint": endpoint, "rate_limits": {"GetVpnGatewayDiagnoseResult": rate}},
        "targets": [{"region_id": r, "gateways": ids} for r, ids in by_region.items()],
    }
    path.write_text(yaml.safe_dump(config))


def http_status(port: int, path: str) -> int | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status
    except OSError:
        return None


def simulator_calls(port: int, action: str = "GetVpnGatewayDiagnoseResult") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/_simulator/stats")
    stats = json.loads(connection.getresponse().read())
    connection.close()
    return int(stats["calls"].get(action, 0))


def exporter_argv(config: Path, port: int) -> list[str]:
    return [
        "-m",
        "exporter",
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=error",
    ]


class Tree:
    """A checkout of the exporter to run: this one, or the baseline revision."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.path)}

    def child(self, name: str, argv: list[str]) -> Child:
        return Child(f"{name}-{self.name}", argv, env=self.env(), cwd=self.path)


def baseline_tree(rev: str, workdir: Path) -> Tree | None:
    """The baseline revision's files (None when git cannot produce them)."""
    target = workdir / "baseline"
    target.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return Tree("baseline", target)


def wait_ready(child: Child, port: int) -> float:
    """Seconds from spawning `child` to its first `200` on `/readyz`."""
    while http_status(port, "/readyz") != 200:
        child.check_alive()
        if time.perf_counter() - child.started_at > 60:
            raise RuntimeError("the exporter was not ready within 60 s")
        time.sleep(0.005)
    return time.perf_counter() - child.started_at


def start_to_ready(tree: Tree, config: Path) -> float:
    port = free_port()
    with tree.child("exporter-cli", exporter_argv(config, port)) as child:
        return wait_ready(child, port)


def import_time(tree: Tree) -> float:
    """Seconds a fresh interpreter spends importing the start-up module (`exporter.process.run`;
    `exporter.run` in revisions before the `process` package)."""
    # Decided here from the tree's files: in the child, the editable install's finder would
    # offer this checkout's `exporter.process` to an older tree that has none.
    module = (
        "exporter.process.run"
        if (tree.path / "exporter/process/run.py").exists()
        else "exporter.run"
    )
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(tree.env()),
        cwd=tree.path,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


@dataclass(slots=True)
class LoadRun:
    """What one run of the command line through its first cycle measured."""

    ready: float = math.nan
    loaded: float = math.nan
    rss_loaded: float = math.nan
    rss_scraped: float = math.nan
    peak: float = math.nan
    rss_small: float = math.nan
    samples: int = 0
    body_bytes: int = 0
    scrapes: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "gzip": []})
    lag: dict[str, float] = field(default_factory=dict)
    """Our loop-lag histogram: bucket bound → cumulative count ("+Inf" included)."""


SCRAPE_EVERY = 1.0
"""Seconds from one scrape's start to the next one's during the first cycle."""


class _LoadScraper(threading.Thread):
    """Scrapes plain and gzip alternately until stopped, timing each scrape."""

    def __init__(self, port: int, run: LoadRun) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_ = run
        self.stopping = threading.Event()

    def run(self) -> None:
        scraper = Scraper(self.port, timeout=60)
        formats = ("gzip", "plain")
        index = 0
        while not self.stopping.is_set():
            fmt = formats[index % 2]
            index += 1
            started = time.perf_counter()
            with contextlib.suppress(OSError, http.client.HTTPException):
                self.run_.scrapes[fmt].append(scraper.scrape(fmt).seconds)
            # A fixed cadence, as Prometheus scrapes: both sides get the same scrape load
            # whatever their speed (back to back, a faster exporter would get more).
            self.stopping.wait(max(0.0, SCRAPE_EVERY - (time.perf_counter() - started)))
        scraper.close()


def _lag_buckets(text: bytes) -> dict[str, float]:
    buckets = {}
    for line in text.decode().splitlines():
        if line.startswith("aliyun_vpn_event_loop_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    return buckets


def load_run(tree: Tree, config: Path, small_config: Path, sim_port: int, gateways: int) -> LoadRun:
    """Start the command line, scrape it through its first cycle, measure it."""
    run = LoadRun()
    port = free_port()
    before = simulator_calls(sim_port)
    with tree.child("exporter-cli", exporter_argv(config, port)) as child:
        run.ready = wait_ready(child, port)
        started = time.perf_counter()
        scraping = _LoadScraper(port, run)
        scraping.start()
        try:
            while simulator_calls(sim_port) - before < gateways:
                child.check_alive()
                if time.perf_counter() - started > 600:
                    raise RuntimeError("the exporter did not poll every gateway within 600 s")
                time.sleep(0.25)
            run.loaded = time.perf_counter() - started
        finally:
            scraping.stopping.set()
            scraping.join()
        time.sleep(3.0)  # the last answers are absorbed
        run.rss_loaded = child.rss_bytes()[0] / 2**20
        scraper = Scraper(port, timeout=60)
        body = scraper.scrape("plain").body
        scraper.scrape("gzip")
        run.rss_scraped, peak = (value / 2**20 for value in child.rss_bytes())
        run.peak = peak
        run.lag = _lag_buckets(scraper.scrape("plain").body)
        scraper.close()
    run.samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    run.body_bytes = len(body)
    small_port = free_port()
    with tree.child("exporter-cli", exporter_argv(small_config, small_port)) as child:
        wait_ready(child, small_port)
        time.sleep(2.0)
        run.rss_small = child.rss_bytes()[0] / 2**20
    return run


def run(settings: FootprintSettings) -> Section:
    workdir = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    try:
        return _run(settings, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _max_lag(buckets: dict[str, float]) -> tuple[str, float]:
    """The smallest bucket bound holding every observation, and how many exceeded 50 ms."""
    total = buckets.get("+Inf", 0.0)
    bound = next((b for b, count in buckets.items() if count >= total), "+Inf")
    over = total - buckets.get(str(LAG_TARGET), total)
    return bound, over


def _run(settings: FootprintSettings, workdir: Path) -> Section:
    section = Section("6. footprint and first cycle")
    regions = regions_of(settings.regions)
    by_region = generated_ids(settings.gateways, regions)
    ours = Tree("ours", REPO)
    trees = [ours]
    baseline = baseline_tree(settings.baseline_rev, workdir) if settings.baseline_rev else None
    if baseline is not None:
        trees.append(baseline)
    else:
        section.note("the baseline revision could not be extracted: ours only")
    config, small_config = workdir / "config.yml", workdir / "small.yml"
    runs: dict[str, list[LoadRun]] = {tree.name: [] for tree in trees}
    ready: dict[str, list[float]] = {tree.name: [] for tree in trees}
    with simulator(settings.gateways, regions) as (_, sim_port):
        endpoint = f"http://127.0.0.1:{sim_port}"
        write_config(config, endpoint, by_region, LOAD_RATE_PER_REGION)
        small = {region: ids[:1] for region, ids in list(by_region.items())[:2]}
        write_config(small_config, endpoint, small, LOAD_RATE_PER_REGION)
        for round_ in range(settings.rounds):
            for tree in trees if round_ % 2 == 0 else trees[::-1]:
                runs[tree.name].append(
                    load_run(tree, config, small_config, sim_port, settings.gateways)
                )
        for _ in range(settings.ready_runs):
            for tree in trees:
                ready[tree.name].append(start_to_ready(tree, config))
    imports: dict[str, list[float]] = {tree.name: [] for tree in trees}
    for _ in range(settings.import_runs):
        for tree in trees:
            imports[tree.name].append(import_time(tree))
    _rows(section, settings, runs, ready, imports)
    return section


def _figure(runs: dict[str, list[LoadRun]], name: str, get: Any) -> float:
    return _median([get(run) for run in runs.get(name, [])])


def _rows(
    section: Section,
    settings: FootprintSettings,
    runs: dict[str, list[LoadRun]],
    ready: dict[str, list[float]],
    imports: dict[str, list[float]],
) -> None:
    n = settings.gateways
    rounds = len(runs["ours"])

    def pair(get: Any) -> tuple[float, float]:
        return _figure(runs, "ours", get), _figure(runs, "baseline", get)

    def mb(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.0f} MiB"

    def seconds(value: float) -> str:
        return "n/a" if math.isnan(value) else ms(value) if value < 1 else f"{value:.2f} s"

    samples = runs["ours"][0].samples
    ours_rss, base_rss = pair(lambda r: r.rss_scraped)
    section.add(
        Row(
            f"resident memory at {n:,} gateways ({samples:,} samples), polled and scraped "
            f"through the first cycle (median of {rounds})",
            mb(ours_rss),
            mb(base_rss),
            ratio(ours_rss, base_rss) if not math.isnan(base_rss) else "",
            f"≤ {RSS_TARGET_MB:.0f} MiB",
            ours_rss <= RSS_TARGET_MB,
        )
    )
    ours_peak, base_peak = pair(lambda r: r.peak)
    section.add(Row("peak resident memory (VmHWM)", mb(ours_peak), mb(base_peak)))
    ours_loaded, base_loaded = pair(lambda r: r.rss_loaded)
    section.add(
        Row(
            "resident memory after the first cycle, before scrapes",
            mb(ours_loaded),
            mb(base_loaded),
        )
    )
    per_series = [
        (_figure(runs, name, lambda r: (r.rss_scraped - r.rss_small) * 2**20 / r.samples))
        for name in ("ours", "baseline")
    ]
    small = pair(lambda r: r.rss_small)
    section.add(
        Row(
            "RSS per sample over the base (the same exporter with 2 gateways: "
            f"{mb(small[0])} ours, {mb(small[1])} baseline)",
            f"{per_series[0]:.0f} bytes",
            "n/a" if math.isnan(per_series[1]) else f"{per_series[1]:.0f} bytes",
            ratio(*per_series) if not math.isnan(per_series[1]) else "",
        )
    )
    for fmt, target in (("gzip", LOAD_GZIP_P99), ("plain", LOAD_PLAIN_P99)):
        mine = [t for run in runs["ours"] for t in run.scrapes[fmt]]
        theirs = [t for run in runs.get("baseline", []) for t in run.scrapes[fmt]]
        section.add(
            Row(
                f"{fmt} scrape while the first cycle lands ({LOAD_RATE_PER_REGION} per region): "
                f"p99 (slowest) of {len(mine)} vs {len(theirs)}",
                f"{seconds(p99(mine)) if mine else 'n/a'} ({seconds(max(mine, default=math.nan))})",
                f"{seconds(p99(theirs)) if theirs else 'n/a'} "
                f"({seconds(max(theirs, default=math.nan))})",
                ratio(p99(mine), p99(theirs)) if mine and theirs else "",
                f"p99 ≤ {target:.0f} s",
                bool(mine) and p99(mine) <= target,
            )
        )
    lags = [_max_lag(run.lag) for run in runs["ours"]]
    over = sum(count for _, count in lags)
    worst = max((bound for bound, _ in lags), key=lambda b: math.inf if b == "+Inf" else float(b))
    section.add(
        Row(
            "event-loop lag from start through the first cycle, listings and scrapes "
            "(probes over 50 ms, all rounds)",
            f"{over:.0f} over 50 ms; every probe ≤ {worst} s",
            "not measured (no probe)",
            "",
            "0 over 50 ms",
            over == 0,
        )
    )
    loaded = pair(lambda r: r.loaded)
    section.add(
        Row("first cycle: every gateway polled after ready", seconds(loaded[0]), seconds(loaded[1]))
    )
    mine_ready, their_ready = _median(ready["ours"]), _median(ready.get("baseline", []))
    section.add(
        Row(
            f"start to ready (/readyz 200), {n:,} gateways configured, median of "
            f"{len(ready['ours'])}",
            seconds(mine_ready),
            seconds(their_ready),
            ratio(mine_ready, their_ready) if not math.isnan(their_ready) else "",
            f"≤ {READY_TARGET} s",
            mine_ready <= READY_TARGET,
        )
    )
    mine_import, their_import = min(imports["ours"]), min(imports.get("baseline", [math.nan]))
    section.add(
        Row(
            f"import of the start-up module, best of {len(imports['ours'])}",
            seconds(mine_import),
            seconds(their_import),
            ratio(mine_import, their_import) if not math.isnan(their_import) else "",
        )
    )
    first = runs["ours"][0]
    section.note(
        f"{n:,} gateways in {settings.regions} regions polled through a simulator process "
        f"({LOAD_RATE_PER_REGION} per region for the load only); /metrics then held "
        f"{first.samples:,} samples in {first.body_bytes / 2**20:.0f} MiB of plain text. "
        f"Baseline: the exporter at {settings.baseline_rev or 'none'} run the same way, "
        "rounds alternating which goes first."
    )
