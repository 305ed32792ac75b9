"""Benchmark 6: footprint. Resident memory at 10,000 gateways, start to ready, import time.

Memory is measured on the real thing: `python -m exporter --config.file=…` (the console
script's code) polling 10,000 generated gateways in 10 regions of a simulator process
(no throttling), with the budget raised to 3,000 calls/min per region so that the first
cycle takes some 20 s instead of the 10 minutes the real quota would need. Once every
gateway has been polled, its RSS is read from /proc; again after a plain and a gzip
scrape (the peak, VmHWM, is reported too).

Start to ready: from spawning the same command to the first `200` from `/readyz`.
Import time: a fresh interpreter importing `exporter.run` (what the command line imports
before it starts), the best of several.
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.feed import regions_of
from benchmarks.procs import Child, child_env, free_port, simulator, wait_for_port
from benchmarks.report import Row, Section, ms
from benchmarks.scraping import Scraper
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET

RSS_TARGET_MB = 250.0
READY_TARGET = 1.5
LOAD_RATE_PER_REGION = "3000/min"


@dataclass(frozen=True, slots=True)
class FootprintSettings:
    gateways: int = 10_000
    regions: int = 10
    ready_runs: int = 3
    import_runs: int = 5


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


def simulator_calls(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/_simulator/stats")
    stats = json.loads(connection.getresponse().read())
    connection.close()
    return int(stats["calls"].get("GetVpnGatewayDiagnoseResult", 0))


def exporter_argv(config: Path, port: int) -> list[str]:
    return [
        "-m",
        "exporter",
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=error",
    ]


def start_to_ready(config: Path) -> float:
    """Seconds from spawning the exporter to its first `200` on `/readyz`."""
    port = free_port()
    with Child("exporter-cli", exporter_argv(config, port)) as child:
        while http_status(port, "/readyz") != 200:
            child.check_alive()
            if time.perf_counter() - child.started_at > 30:
                raise RuntimeError("the exporter was not ready within 30 s")
            time.sleep(0.005)
        return time.perf_counter() - child.started_at


def import_time() -> float:
    """Seconds a fresh interpreter spends importing `exporter.run`."""
    code = (
        "import time; t = time.perf_counter(); import exporter.run; print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def run(settings: FootprintSettings) -> Section:
    workdir = Path(tempfile.mkdtemp(prefix="bench-footprint-"))
    try:
        return _run(settings, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(settings: FootprintSettings, workdir: Path) -> Section:
    section = Section("6. footprint")
    regions = regions_of(settings.regions)
    by_region = generated_ids(settings.gateways, regions)
    config = workdir / "config.yml"
    with simulator(settings.gateways, regions) as (_, sim_port):
        write_config(config, f"http://127.0.0.1:{sim_port}", by_region, LOAD_RATE_PER_REGION)
        ready = [start_to_ready(config) for _ in range(settings.ready_runs)]
        small_config = workdir / "small.yml"
        small = {region: ids[:1] for region, ids in list(by_region.items())[:2]}
        write_config(small_config, f"http://127.0.0.1:{sim_port}", small, LOAD_RATE_PER_REGION)
        ready_small = [start_to_ready(small_config) for _ in range(settings.ready_runs)]
        port = free_port()
        with Child("exporter-cli", exporter_argv(config, port)) as child:
            wait_for_port(port, 30, child)
            started = time.perf_counter()
            while simulator_calls(sim_port) < settings.gateways:
                child.check_alive()
                if time.perf_counter() - started > 300:
                    raise RuntimeError("the exporter did not poll every gateway within 300 s")
                time.sleep(0.5)
            loaded = time.perf_counter() - started
            time.sleep(2.0)  # the last answers are absorbed
            rss_loaded, _ = child.rss_bytes()
            scraper = Scraper(port)
            body = scraper.scrape("plain").body
            scraper.scrape("gzip")
            scraper.close()
            rss_scraped, peak = child.rss_bytes()
    polled = body.count(b"\naliyun_vpn_poll_success{")
    samples = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
    mb = rss_scraped / 2**20
    per_thousand = mb / (settings.gateways / 1000)
    section.add(
        Row(
            f"resident memory at {settings.gateways:,} gateways, after polls and scrapes",
            f"{mb:.0f} MB ({per_thousand:.1f} MB per 1,000 gateways)",
            "",
            "",
            f"≤ {RSS_TARGET_MB:.0f} MB",
            mb <= RSS_TARGET_MB,
        )
    )
    section.add(
        Row(
            "resident memory: after polls / peak (VmHWM)",
            f"{rss_loaded / 2**20:.0f} MB / {peak / 2**20:.0f} MB",
        )
    )
    best_ready = statistics.median(ready)
    section.add(
        Row(
            f"start to ready (/readyz 200), {settings.gateways:,} gateways configured, "
            f"median of {len(ready)}",
            ms(best_ready),
            "",
            "",
            f"≤ {READY_TARGET} s",
            best_ready <= READY_TARGET,
        )
    )
    section.add(
        Row(
            f"start to ready, 2 gateways configured, median of {len(ready_small)}",
            ms(statistics.median(ready_small)),
        )
    )
    imports = [import_time() for _ in range(settings.import_runs)]
    section.add(Row(f"import exporter.run, best of {len(imports)}", ms(min(imports))))
    section.note(
        f"the exporter polled {settings.gateways:,} gateways in {loaded:.0f} s through a "
        f"simulator process ({LOAD_RATE_PER_REGION} per region budget for the load only); "
        f"its /metrics then listed {polled:,} gateways with poll_success, {samples:,} samples "
        f"in {len(body) / 2**20:.0f} MiB of text (the exporter keeps one copy of it: see "
        "`exporter.exposition.cells`)."
    )
    return section
