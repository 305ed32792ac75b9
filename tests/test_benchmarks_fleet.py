"""The benchmarks measure the fleet the command line serves: the benchmark exporter, fed
the simulator's answers without HTTP (`benchmarks.feed`), exports the same series per
gateway, connection and tunnel series included, as `python -m exporter` polling the same
generated scenario through a simulator over HTTP."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from benchmarks.bench_footprint import write_config
from benchmarks.exporter_server import Bench
from benchmarks.feed import GeneratedFleet, regions_of
from exporter.simulator.generator import generated_scenario
from exporter.simulator.simulator import Simulator
from tests.process_harness import exporter_process, simulator_thread

GATEWAYS = 20
REGIONS = regions_of(2)
_GATEWAY_SAMPLE = re.compile(r'^(aliyun_vpn_\w+)\{[^\n]*vpn_gateway_id="([^"]+)"', re.MULTILINE)


def series_per_gateway(text: str) -> Counter[tuple[str, str]]:
    """(gateway, metric name) → number of series."""
    return Counter((gateway, name) for name, gateway in _GATEWAY_SAMPLE.findall(text))


async def benchmark_fleet() -> str:
    bench = Bench(GATEWAYS, len(REGIONS))
    await bench.start()
    try:
        return b"".join(bench.exporter.exposition.chunks()).decode()
    finally:
        await bench.exporter.listener.stop()


def everything_listed(text: str) -> bool:
    polled = text.count("\naliyun_vpn_poll_success{")
    listed = len(re.findall(r"listing_success\{[^}]*DescribeVpnConnections[^}]*\} 1", text))
    return polled == GATEWAYS and listed == len(REGIONS)


async def test_the_benchmark_fleet_is_the_fleet_the_command_line_serves(tmp_path: Path) -> None:
    ours = series_per_gateway(await benchmark_fleet())
    by_region = GeneratedFleet(GATEWAYS, REGIONS).by_region
    simulator = Simulator(generated_scenario(GATEWAYS, REGIONS), throttling=False)
    with simulator_thread(simulator) as (_, url):
        config = tmp_path / "config.yml"
        write_config(config, url, by_region, "3000/min")
        with exporter_process(tmp_path, config.read_text()) as process:
            text = process.wait_for(everything_listed, "every gateway polled and listed")
    cli = series_per_gateway(text)
    names = {name for _, name in ours}
    assert {"aliyun_vpn_connection_info", "aliyun_vpn_tunnel_ipsec_status"} <= names
    assert {gateway for gateway, _ in ours} == {g for ids in by_region.values() for g in ids}
    assert ours == cli
