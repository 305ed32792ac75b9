"""Event-loop time of the status page at `/` for a large fleet (issue 13, target 7).

    python -m benchmarks.bench_status_page                  # 10,000 gateways
    python -m benchmarks.bench_status_page --gateways 1000

Builds one record per gateway as the poller and the inventory would (a finished
diagnosis of all seven items with quota, probe and consistency readings, one IPsec
connection with two tunnels, BGP and health check; a few percent of gateways at warning,
at error, without a diagnosis, with a failed poll), serves the real ASGI app of the
metrics listener in this process, and times requests to `/`.

"Loop time" is the CPU time the event loop's thread spends on one request
(`time.thread_time()` around the ASGI call, so time the worker thread spends deriving
rows is not counted, and neither is waiting for it). The longest single stall of the
loop is measured too, by a task that asks to wake every millisecond. Printed per case:
the median of `--runs` requests (the maximum in brackets), and the page's size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from exporter.exposition.records import (
    ConnectionDiagnosis,
    GatewayKey,
    GatewayRecord,
    PollResult,
)
from exporter.exposition.render import Exposition
from exporter.model.connection import Tunnel, VpnConnection
from exporter.model.diagnosis import (
    ConsistencyReading,
    DiagnoseItem,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
    RouteConflictReading,
)
from exporter.model.gateway import GatewayInfo
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.metrics_app import MetricsEndpoint, build_metrics_app
from exporter.web.status_page import StatusPage

NOW = 1_800_000_000.0
TARGET_MS = 50.0


def _diagnosis(gateway_id: str, connection_id: str, n: int, level: Level) -> Diagnosis:
    quota = Level.ERROR if level is Level.ERROR else Level.NORMAL
    probe = Level.WARNING if level is Level.WARNING else Level.NORMAL
    items = (
        DiagnoseItem("VpnRouteQuota", quota, QuotaReading("route", 20.0 + n % 70, 100.0)),
        DiagnoseItem("VpnIPsecQuota", Level.NORMAL, QuotaReading("ipsec", 2.0, 10.0)),
        DiagnoseItem("VpnPbrRouteQuota", Level.NORMAL, QuotaReading("pbr", 5.0, 100.0)),
        DiagnoseItem("RouteEntryConflict", Level.NORMAL, RouteConflictReading(0)),
        DiagnoseItem("VcoConfigConsistency", Level.NORMAL, ConsistencyReading(True, 0)),
        DiagnoseItem(
            "VcoUserInternetIpConnectivity",
            Level.NORMAL,
            ProbeReading("", f"203.0.113.{n % 250}", 0.02 + n % 7 / 1000, 0.0),
        ),
        DiagnoseItem(
            "VcoPrivateConnectivity",
            probe,
            ProbeReading("10.0.0.10", "192.168.0.10", 0.03, 0.08 if probe else 0.0),
        ),
    )
    return Diagnosis(gateway_id, f"diag-{n}", connection_id, NOW - 600, NOW - 590, 7, 7, items)


def fleet(gateways: int) -> dict[GatewayKey, GatewayRecord]:
    """`gateways` records over 20 targets; 3 % error, 5 % warning, 1 % without a
    diagnosis, 1 % with a failed poll."""
    records = {}
    for n in range(gateways):
        region = f"region-{n % 20}"
        key = GatewayKey(f"default/{region}", region, f"vpn-{n:08d}")
        connection_id = f"vco-{n:08d}"
        kind = n % 100
        level = Level.ERROR if kind < 3 else Level.WARNING if kind < 8 else Level.NORMAL
        failed = kind == 8
        tunnel_status = "ipsec_sa_not_established" if kind == 1 else "ipsec_sa_established"
        connection = VpnConnection(
            connection_id,
            key.vpn_gateway_id,
            f"ipsec-{n}",
            "attached",
            tunnel_status,
            "CEN",
            "tr-1",
            "success",
            "success",
            (
                Tunnel(f"tun-{n}a", "master", "active", tunnel_status),
                Tunnel(f"tun-{n}b", "slave", "active", "ipsec_sa_established"),
            ),
        )
        poll = PollResult(
            success=not failed,
            finished_at=NOW - 30,
            duration=0.2,
            error_code="Throttling.User" if failed else None,
            error="Request was denied due to user flow control." if failed else None,
        )
        record = GatewayRecord(
            key,
            last_poll=poll,
            last_success_at=NOW - 30,
            info=GatewayInfo(f"gw-{n}", f"vpc-{n}", "10M", "active"),
            vpn_connections=(connection,),
            vpn_connections_at=NOW - 60,
        )
        if kind != 9:
            diagnosis = _diagnosis(key.vpn_gateway_id, connection_id, n, level)
            record = replace(
                record,
                available=True,
                latest_connection=connection_id,
                connections=MappingProxyType(
                    {connection_id: ConnectionDiagnosis(diagnosis, diagnosis, NOW - 30)}
                ),
            )
        else:
            record = replace(record, available=False)
        records[key] = record
    return records


async def _request(app: Any, query: bytes) -> tuple[float, int]:
    """One GET / through the ASGI app: (loop-thread CPU seconds, body bytes)."""
    body = bytearray()
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": query,
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 9747),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        body.extend(message.get("body", b""))

    # thread_time() counts this (the loop's) thread only: the worker thread's CPU, and
    # the time the loop waits for it, are not in it.
    started = time.thread_time()
    await app(scope, receive, send)
    return time.thread_time() - started, len(body)


class StallProbe:
    """The longest time the loop took to wake a task that asked to sleep 1 ms."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - before - 0.001)

    def __enter__(self) -> StallProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def measure(gateways: int, runs: int) -> list[tuple[str, float, float, float, int]]:
    """(case, median loop ms, max loop ms, worst stall ms, page bytes) per case."""
    records = fleet(gateways)
    current: dict[str, Mapping[GatewayKey, GatewayRecord]] = {"records": records}
    page = StatusPage(lambda: current["records"], lambda: "https://grafana.example", lambda: NOW)

    app = build_metrics_app(
        MetricsEndpoint(Exposition(), SelfMetrics()),
        healthy=lambda: (True, "ok"),
        ready=lambda: (True, "ok"),
        status_page=page,
    )
    keys = list(records)
    results = []

    def change(count: int) -> Callable[[], None]:
        def apply() -> None:
            changed = dict(current["records"])
            for key in keys[:count]:
                changed[key] = replace(changed[key], last_success_at=NOW)
            current["records"] = changed

        return apply

    cases: list[tuple[str, bytes, Callable[[], None] | None]] = [
        ("cold: first request, every row derived", b"", None),
        ("cached: nothing changed", b"", None),
        ("100 gateways changed since the last request", b"", change(100)),
        ("cached, ?state=error", b"state=error", None),
        ("cached, ?q=vpn-0000 (search)", b"q=vpn-0000", None),
        ("cached, ?limit=500 (largest page)", b"limit=500", None),
    ]
    for name, query, before in cases:
        times, stalls, size = [], [], 0
        repeat = 1 if name.startswith("cold") else runs
        for _ in range(repeat):
            if before is not None:
                before()
            with StallProbe() as probe:
                loop_cpu, size = await _request(app, query)
                await asyncio.sleep(0.002)
            times.append(loop_cpu * 1000)
            stalls.append(probe.worst * 1000)
        results.append((name, statistics.median(times), max(times), max(stalls), size))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.gateways, args.runs))
    print(f"status page, {args.gateways} gateways (target: loop time <= {TARGET_MS:.0f} ms)")
    print(f"{'case':48} {'loop ms':>16} {'stall ms':>9} {'bytes':>9}")
    worst = 0.0
    for name, median, most, stall, size in results:
        worst = max(worst, most)
        print(f"{name:48} {median:7.2f} ({most:6.2f}) {stall:9.2f} {size:9d}")
    verdict = "met" if worst <= TARGET_MS else "NOT met"
    print(f"worst loop time per request: {worst:.1f} ms: target {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
