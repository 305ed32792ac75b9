"""Benchmark 7: the status page's event-loop time per request at the fleet size, from the
status page's own benchmark (`benchmarks.bench_status_page`, run in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from benchmarks.procs import REPO, child_env
from benchmarks.report import Row, Section

TARGET_MS = 50.0


@dataclass(frozen=True, slots=True)
class StatusSettings:
    gateways: int = 10_000
    runs: int = 9


def run(settings: StatusSettings) -> Section:
    section = Section("7. status page")
    code = (
        "import asyncio, json; from benchmarks.bench_status_page import measure; "
        f"print(json.dumps(asyncio.run(measure({settings.gateways}, {settings.runs}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    for name, median, most, stall, size in json.loads(done.stdout.strip().splitlines()[-1]):
        section.add(
            Row(
                f"{name} ({size / 1e3:.0f} kB): loop time median (max), worst stall",
                f"{median:.1f} ms ({most:.1f} ms), stall {stall:.1f} ms",
                "",
                "",
                f"≤ {TARGET_MS:.0f} ms",
                most <= TARGET_MS,
            )
        )
    section.note(
        f"{settings.gateways:,} gateways; loop time is the event loop thread's CPU per request "
        "(`benchmarks.bench_status_page`, owned by the status page's work)."
    )
    return section
