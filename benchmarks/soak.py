"""Soak: the exporter for a long while at 10,000 gateways, with churn, faults and scrapes.

    python -m benchmarks.soak [--minutes 10] [--warmup-minutes 2] [--gateways 10000]
                              [--write docs/soak.md]

Not part of CI (it takes the minutes it is told to). Three processes:

- the simulator (`aliyun-vpn-exporter simulate`) serving `gateways + spare` generated
  gateways in two regions, no throttling;
- the exporter, started by this module's `child` entry point, which runs exactly what
  `aliyun-vpn-exporter --config.file=...` runs (`exporter.process.run.run`) and also writes,
  once a second, how many asyncio tasks its loop holds;
- this process, which scrapes `/metrics` once a second (gzip, as Prometheus asks, bytes
  counted and not decompressed), and meanwhile:
  - churns the fleet: every `--churn-seconds` it rewrites the config with some gateways
    gone and others new, and sends SIGHUP (a reload);
  - switches faults on and off every `--fault-seconds`: 503s, resets, throttling, slow
    drips and hung connections on a share of the calls;
  - samples the exporter's resident memory and open file descriptors (`/proc`).

After the warm-up (the first poll cycle of the whole fleet, at the budget's pace) it
compares the first and the last minute: resident memory must grow less than 5 %, and
neither file descriptors nor asyncio tasks may grow. It prints the figures (and writes
them with `--write`); the exit code is 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
ACTION = "GetVpnGatewayDiagnoseResult"
REGIONS = ("cn-hangzhou", "cn-beijing")
KEY_ID = "demo-access-key-id"
KEY_SECRET = "demo-access-key-secret"


@dataclass(frozen=True)
class Settings:
    minutes: float = 10.0
    warmup_minutes: float = 2.0
    gateways: int = 10_000
    spare: int = 1_000
    """Gateways the simulator serves beyond those configured: churn brings them in."""
    churn_seconds: float = 30.0
    churn_size: int = 200
    fault_seconds: float = 20.0
    interval: str = "2m"
    rate: str = "150/s"
    window_seconds: float = 60.0
    """The first and last windows compared after the warm-up."""


FAULT_SETS: tuple[tuple[str, list[dict[str, Any]]], ...] = (
    (
        "503s and resets",
        [
            {"kind": "error", "status": 503, "action": ACTION, "every": 20},
            {"kind": "reset", "action": ACTION, "every": 31},
        ],
    ),
    (
        "throttling and slow drips",
        [
            {"kind": "throttle", "action": ACTION, "every": 25, "retry_after_ms": 100},
            {"kind": "drip", "action": ACTION, "every": 97, "seconds": 0.5},
        ],
    ),
    (
        "hung connections and truncated bodies",
        [
            {"kind": "timeout", "action": ACTION, "every": 101, "seconds": 10},
            {"kind": "truncated_json", "action": ACTION, "every": 43},
        ],
    ),
)


# --- the exporter child -------------------------------------------------------------------


def child(argv: Sequence[str]) -> int:
    """`python -m benchmarks.soak child REPORT EXPORTER-ARGS...`: the exporter as its
    command line runs it, plus a line `{"time", "tasks"}` appended to REPORT every second."""
    from exporter.cli import build_parser
    from exporter.collect.sharding import UNSHARDED
    from exporter.logs import setup_logging
    from exporter.process.run import run

    report, *rest = argv
    args = build_parser().parse_args(rest)
    args.sharding = UNSHARDED
    setup_logging(args.log_level, args.log_format)

    async def reporting() -> None:
        with open(report, "a", buffering=1) as sink:
            while True:
                sink.write(json.dumps({"time": time.time(), "tasks": len(asyncio.all_tasks())}))
                sink.write("\n")
                await asyncio.sleep(1.0)

    async def main() -> int:
        reporter = asyncio.create_task(reporting())
        try:
            return await run(args)
        finally:
            reporter.cancel()

    return asyncio.run(main())


# --- processes ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _process(args: Sequence[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", *args], stdout=sink, stderr=sink, env=env, cwd=REPO
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {process.returncode}; see {log}")
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} does not listen on {port}; see {log}")
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE_SIZE


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _last_tasks(report: Path) -> int | None:
    with suppress(OSError, ValueError, IndexError):
        line = report.read_text().splitlines()[-1]
        return int(json.loads(line)["tasks"])
    return None


# --- the soak -----------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    rss: int
    fds: int
    tasks: int | None


@dataclass
class Run:
    settings: Settings
    samples: list[Sample] = field(default_factory=list)
    scrape_seconds: list[float] = field(default_factory=list)
    scrape_bytes: list[int] = field(default_factory=list)
    scrape_failures: int = 0
    reloads: int = 0
    reload_failures: int = 0
    fault_switches: int = 0
    started: float = 0.0
    exit_code: int | None = None


def _config(
    endpoint: str, gateways: Sequence[str], region_of: dict[str, str], settings: Settings
) -> dict[str, Any]:
    by_region: dict[str, list[str]] = {region: [] for region in REGIONS}
    for gateway in gateways:
        by_region[region_of[gateway]].append(gateway)
    return {
        "credentials": {
            "default": {
                "source": "access_key",
                "access_key_id": KEY_ID,
                "access_key_secret": KEY_SECRET,
            }
        },
        "poll": {"interval": settings.interval},
        "api": {
            "endpoint": endpoint,
            "timeout": "2s",
            "max_retries": 2,
            "rate_limits": {
                ACTION: settings.rate,
                "DescribeVpnGateways": "50/s",
                "DescribeVpnConnections": "50/s",
            },
        },
        "targets": [
            {"region_id": region, "gateways": ids} for region, ids in by_region.items() if ids
        ],
    }


def _generated(total: int) -> dict[str, str]:
    """The region of each gateway the simulator generates (`--gateways`, seed 0)."""
    from exporter.simulator.generator import generated_scenario
    from exporter.simulator.simulator import Simulator

    fleet = Simulator(generated_scenario(total, list(REGIONS), 0), throttling=False).fleet
    return {g.id: region for region in fleet.regions() for g in fleet.find_gateways(region, {})}


class _Scraper(threading.Thread):
    def __init__(self, url: str, run: Run, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.run_, self.halt = url, run, stop

    def run(self) -> None:
        headers = {
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            "Accept-Encoding": "gzip",
        }
        with httpx.Client(timeout=30) as http:
            next_at = time.monotonic()
            while not self.halt.is_set():
                started = time.perf_counter()
                try:
                    size = 0
                    with http.stream("GET", self.url, headers=headers) as response:
                        response.raise_for_status()
                        for chunk in response.iter_raw():
                            size += len(chunk)
                except httpx.HTTPError:
                    self.run_.scrape_failures += 1
                else:
                    self.run_.scrape_seconds.append(time.perf_counter() - started)
                    self.run_.scrape_bytes.append(size)
                next_at += 1.0
                self.halt.wait(max(0.0, next_at - time.monotonic()))


def soak(settings: Settings, directory: Path) -> Run:
    run = Run(settings)
    region_of = _generated(settings.gateways + settings.spare)
    ids = sorted(region_of)
    sim_port, port = _free_port(), _free_port()
    endpoint = f"http://127.0.0.1:{sim_port}"
    config = directory / "config.yml"
    window = list(ids[: settings.gateways])
    spare = list(ids[settings.gateways :])
    config.write_text(yaml.safe_dump(_config(endpoint, window, region_of, settings)))
    report = directory / "tasks.jsonl"
    simulator_args = [
        "exporter",
        "simulate",
        f"--gateways={settings.gateways + settings.spare}",
        f"--regions={','.join(REGIONS)}",
        "--no-throttling",
        f"--listen-address=127.0.0.1:{sim_port}",
        "--log.level=warning",
    ]
    exporter_args = [
        "benchmarks.soak",
        "child",
        str(report),
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warning",
    ]
    halt = threading.Event()
    with ExitStack() as stack:
        stack.enter_context(_process(simulator_args, sim_port, directory / "simulator.log"))
        exporter = stack.enter_context(_process(exporter_args, port, directory / "exporter.log"))
        run.started = time.monotonic()
        scraper = _Scraper(f"http://127.0.0.1:{port}/metrics", run, halt)
        scraper.start()
        stack.callback(scraper.join, 30)
        stack.callback(halt.set)
        total = 60 * (settings.warmup_minutes + settings.minutes)
        next_churn = run.started + settings.churn_seconds
        next_fault = run.started + settings.fault_seconds
        fault_index, faults_on = 0, False
        with httpx.Client(timeout=10) as control:
            while time.monotonic() - run.started < total:
                now = time.monotonic()
                run.samples.append(
                    Sample(
                        now - run.started,
                        _rss_bytes(exporter.pid),
                        _open_fds(exporter.pid),
                        _last_tasks(report),
                    )
                )
                if now >= next_churn:
                    # Some gateways vanish, as many new ones appear; SIGHUP reloads.
                    gone = window[: settings.churn_size]
                    window = window[settings.churn_size :] + spare[: settings.churn_size]
                    spare = spare[settings.churn_size :] + gone
                    config.write_text(
                        yaml.safe_dump(_config(endpoint, window, region_of, settings))
                    )
                    exporter.send_signal(signal.SIGHUP)
                    run.reloads += 1
                    next_churn += settings.churn_seconds
                if now >= next_fault:
                    if faults_on:
                        control.delete(f"{endpoint}/_simulator/faults").raise_for_status()
                    else:
                        _, faults = FAULT_SETS[fault_index % len(FAULT_SETS)]
                        fault_index += 1
                        for fault in faults:
                            control.post(
                                f"{endpoint}/_simulator/faults", json=fault
                            ).raise_for_status()
                    faults_on = not faults_on
                    run.fault_switches += 1
                    next_fault += settings.fault_seconds
                if exporter.poll() is not None:
                    raise RuntimeError(f"the exporter died; see {directory / 'exporter.log'}")
                time.sleep(1.0)
        log_text = (directory / "exporter.log").read_text(errors="replace")
        run.reload_failures = log_text.count("configuration reload failed")
        halt.set()
        scraper.join(30)
        exporter.send_signal(signal.SIGTERM)
        run.exit_code = exporter.wait(timeout=30)
    return run


# --- the verdict --------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    first: float
    last: float
    limit: str
    passed: bool


def _window(run: Run, start: float, end: float) -> list[Sample]:
    return [s for s in run.samples if start <= s.at < end]


def checks(run: Run) -> list[Check]:
    settings = run.settings
    warm = 60 * settings.warmup_minutes
    end = run.samples[-1].at if run.samples else 0.0
    first = _window(run, warm, warm + settings.window_seconds)
    last = _window(run, end - settings.window_seconds, end + 1)
    if not first or not last:
        return []
    rss_first = statistics.median(s.rss for s in first)
    rss_last = statistics.median(s.rss for s in last)
    growth = (rss_last - rss_first) / rss_first * 100
    fds_first = max(s.fds for s in first)
    fds_last = statistics.median(s.fds for s in last)
    tasks_first = max((s.tasks for s in first if s.tasks is not None), default=0)
    tasks_last = statistics.median(s.tasks for s in last if s.tasks is not None)
    return [
        Check(
            "resident memory (median of the window, MB)",
            rss_first / 1e6,
            rss_last / 1e6,
            f"growth {growth:+.1f} % < 5 %",
            growth < 5.0,
        ),
        Check(
            "open file descriptors (max of the first window, median of the last)",
            fds_first,
            fds_last,
            "last <= first",
            fds_last <= fds_first,
        ),
        Check(
            "asyncio tasks (max of the first window, median of the last)",
            tasks_first,
            tasks_last,
            "last <= first",
            tasks_last <= tasks_first,
        ),
    ]


def report(run: Run) -> str:
    settings = run.settings
    found = checks(run)
    scrapes = sorted(run.scrape_seconds)
    p99 = scrapes[min(len(scrapes) - 1, round(0.99 * (len(scrapes) - 1)))] if scrapes else 0.0
    rss = [s.rss for s in run.samples]
    lines = [
        "# Soak",
        "",
        "Written by `python -m benchmarks.soak --write docs/soak.md` (not part of CI).",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        f"- fleet: {settings.gateways:,} gateways polled (of {settings.gateways + settings.spare:,}"
        f" simulated) in {len(REGIONS)} regions, interval {settings.interval}, budget "
        f"{settings.rate} per region",
        f"- duration: {settings.warmup_minutes:g} min warm-up + {settings.minutes:g} min "
        f"measured; windows compared: the first and last {settings.window_seconds:g} s after "
        "the warm-up",
        f"- churn: {run.reloads} reloads (SIGHUP), each replacing {settings.churn_size} "
        f"gateways ({run.reload_failures} failed)",
        f"- faults: switched {run.fault_switches} times ({settings.fault_seconds:g} s on, "
        f"{settings.fault_seconds:g} s off), in turn: " + "; ".join(name for name, _ in FAULT_SETS),
        f"- scrapes: {len(run.scrape_seconds)} answered, {run.scrape_failures} failed; "
        f"gzip body median {statistics.median(run.scrape_bytes or [0]) / 1e6:.2f} MB; "
        f"latency median {statistics.median(scrapes or [0]) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms",
        f"- resident memory over the whole run: min {min(rss or [0]) / 1e6:.0f} MB, "
        f"max {max(rss or [0]) / 1e6:.0f} MB",
        f"- exporter exit code after SIGTERM: {run.exit_code}",
        "",
        "| check | first window | last window | limit | result |",
        "|---|---:|---:|---|---|",
    ]
    for check in found:
        lines.append(
            f"| {check.name} | {check.first:.1f} | {check.last:.1f} | {check.limit} "
            f"| {'pass' if check.passed else 'FAIL'} |"
        )
    lines += ["", "Samples (every 30 s): seconds since start, RSS MB, open fds, tasks", "", "```"]
    for sample in run.samples[::30]:
        lines.append(
            f"{sample.at:6.0f} s  {sample.rss / 1e6:7.1f} MB  {sample.fds:4d} fds  "
            f"{sample.tasks if sample.tasks is not None else '?':>5} tasks"
        )
    lines += ["```", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=Settings.minutes)
    parser.add_argument("--warmup-minutes", type=float, default=Settings.warmup_minutes)
    parser.add_argument("--gateways", type=int, default=Settings.gateways)
    parser.add_argument("--spare", type=int, default=Settings.spare)
    parser.add_argument("--churn-seconds", type=float, default=Settings.churn_seconds)
    parser.add_argument("--churn-size", type=int, default=Settings.churn_size)
    parser.add_argument("--fault-seconds", type=float, default=Settings.fault_seconds)
    parser.add_argument("--interval", default=Settings.interval)
    parser.add_argument("--window-seconds", type=float, default=Settings.window_seconds)
    parser.add_argument("--write", type=Path, help="write the report (markdown) here")
    args = parser.parse_args(argv)
    settings = Settings(
        minutes=args.minutes,
        warmup_minutes=args.warmup_minutes,
        gateways=args.gateways,
        spare=args.spare,
        churn_seconds=args.churn_seconds,
        churn_size=args.churn_size,
        fault_seconds=args.fault_seconds,
        interval=args.interval,
        window_seconds=args.window_seconds,
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as directory:
        try:
            run = soak(settings, Path(directory))
        except RuntimeError:
            for log in sorted(Path(directory).glob("*.log")):
                print(f"--- {log.name} (tail)", file=sys.stderr)
                print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
    text = report(run)
    print(text)
    if args.write:
        args.write.write_text(text)
    found = checks(run)
    return 0 if found and all(check.passed for check in found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
