"""Benchmark 4: client cost. Our VPC client against the official SDK's async client.

Same simulator process (`python -m exporter simulate --no-throttling`), same calls (the
generated gateways that have a diagnosis, in the same order), each client in a fresh
process of its own (`benchmarks.client_worker`) so neither inherits the other's state.
Rounds alternate which client goes first, so a change in machine load hits both; each
figure is the median over rounds.

- CPU per call: `time.process_time` of the client process over the measured calls divided
  by their number: sign, send, receive, decode the body and every description.
- Throughput: calls per second with 20 ms of latency injected by the simulator
  (`POST /_simulator/faults {"kind": "latency", "seconds": 0.02}`), no rate limit.
"""

from __future__ import annotations

import http.client
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.procs import Child, simulator
from benchmarks.report import Row, Section, ms

CLIENTS = ("ours", "sdk")
CPU_TARGET = 1.0
REGION = "cn-hangzhou"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    gateways: int = 1000
    concurrency: Sequence[int] = (1, 10, 50)
    calls: int = 600
    warmup: int = 60
    rounds: int = 3
    latency: float = 0.020
    throughput_calls: dict[int, int] = field(default_factory=lambda: {1: 150, 10: 600, 50: 1200})
    throughput_rounds: int = 2


def worker(
    client: str, port: int, concurrency: int, calls: int, settings: ClientSettings
) -> dict[str, float]:
    argv = [
        "-m",
        "benchmarks.client_worker",
        f"--client={client}",
        f"--port={port}",
        f"--concurrency={concurrency}",
        f"--calls={calls}",
        f"--warmup={min(settings.warmup, calls)}",
        f"--gateways={settings.gateways}",
    ]
    with Child(f"client-{client}", argv) as child:
        result = child.expect("RESULT", timeout=300)
    if result["errors"]:
        raise RuntimeError(
            f"{client} at concurrency {concurrency}: {result['errors']} calls failed"
        )
    return result


def add_latency(port: int, seconds: float) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps(
        {"kind": "latency", "seconds": seconds, "action": "GetVpnGatewayDiagnoseResult"}
    )
    connection.request("POST", "/_simulator/faults", body, {"content-type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 201:
        raise RuntimeError(f"the simulator refused the latency fault: HTTP {response.status}")


def _rounds(
    port: int, settings: ClientSettings, rounds: int, calls: dict[int, int]
) -> dict[tuple[str, int], list[dict[str, float]]]:
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for number in range(rounds):
        order = CLIENTS if number % 2 == 0 else CLIENTS[::-1]
        for concurrency in settings.concurrency:
            for client in order:
                result = worker(client, port, concurrency, calls[concurrency], settings)
                results.setdefault((client, concurrency), []).append(result)
    return results


def run(settings: ClientSettings) -> Section:
    section = Section("4. client cost")
    with simulator(settings.gateways, [REGION]) as (_, port):
        cpu_runs = _rounds(
            port, settings, settings.rounds, {c: settings.calls for c in settings.concurrency}
        )
        add_latency(port, settings.latency)
        throughput_runs = _rounds(
            port, settings, settings.throughput_rounds, settings.throughput_calls
        )
    for concurrency in settings.concurrency:
        ours, sdk = (
            statistics.median(r["cpu"] / r["calls"] for r in cpu_runs[(client, concurrency)])
            for client in CLIENTS
        )
        section.add(
            Row(
                f"CPU per call, concurrency {concurrency} "
                f"(median of {settings.rounds} x {settings.calls} calls)",
                ms(ours),
                f"SDK {ms(sdk)}",
                f"{ours / sdk:.2f}",
                f"≤ {CPU_TARGET:.1f}",
                ours <= CPU_TARGET * sdk,
            )
        )
    for concurrency in settings.concurrency:
        ours, sdk = (
            statistics.median(
                r["calls"] / r["wall"] for r in throughput_runs[(client, concurrency)]
            )
            for client in CLIENTS
        )
        section.add(
            Row(
                f"throughput, {settings.latency * 1000:.0f} ms latency, concurrency {concurrency}",
                f"{ours:.0f} calls/s",
                f"SDK {sdk:.0f} calls/s",
                f"{ours / sdk:.2f}",
                "≥ 1.0",
                ours >= sdk,
            )
        )
    section.note(
        "each call: sign (V3), send, receive, `json.loads` of the body and of all 7 "
        "descriptions; ours through the exporter's VpcClient (httpx API on the httpx-aiohttp "
        "transport, budget check and self-metrics included), the SDK through "
        "`Client.get_vpn_gateway_diagnose_result_async`."
    )
    return section
