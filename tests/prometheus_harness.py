"""Debian's Prometheus on loopback with the shipped rules, timed for tests.

`scaled_rules` keeps every rule of deploy/prometheus/aliyun-vpn-exporter.rules.yml and
shrinks its durations sixty-fold (`for: 10m` becomes 10s, `keep_firing_for: 15m` 15s), so the
alerts keep their order in time: credentials fail before data is stale, an exporter is
down before its alerts would stop being kept. `for_zero=True` drops `for:` altogether.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.alertmanager_harness import WAIT, wait_ready
from tests.demo_harness import free_port
from tests.required_tools import REPO, tool

PROMETHEUS = ("prometheus", "apt-get install -y --no-install-recommends prometheus")
RULES = REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml"
JOB = "aliyun-vpn-exporter"


def _scaled(duration: str) -> str:
    """A Prometheus duration sixty times shorter: 10m → 10s, 1h → 1m, 30s → 500ms."""
    seconds = sum(
        int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        for n, unit in re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    )
    return f"{round(seconds * 1000 / 60)}ms"


def scaled_rules(directory: Path, *, for_zero: bool = False) -> Path:
    """The shipped rules with every duration shortened (a test-only override)."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s" if for_zero else _scaled(rule["for"])
            if "keep_firing_for" in rule:
                rule["keep_firing_for"] = _scaled(rule["keep_firing_for"])
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


@contextlib.contextmanager
def running_prometheus(
    rules: Path, ports: list[int], alertmanager: str, work: Path
) -> Iterator[str]:
    """Prometheus scraping 127.0.0.1:<port> for each port as job aliyun-vpn-exporter, every
    second, evaluating `rules` and alerting `alertmanager`; yields its base URL."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    process = subprocess.Popen(
        [
            tool(*PROMETHEUS),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class PromQL:
    """Instant queries against a Prometheus."""

    url: str

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(self.url + "/api/v1/query", params={"query": expr})
        body = answer.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def until(self, expr: str, bound: float = WAIT) -> list[dict[str, Any]]:
        """The result of `expr` once it is non-empty."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            result = await self.query(expr)
            if result:
                return result
            await asyncio.sleep(0.2)
        raise AssertionError(f"{expr} stayed empty for {bound}s")
