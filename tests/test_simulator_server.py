"""Serving the simulator: in the test's loop, in a thread, and as `simulate` on the CLI."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from exporter.simulator.cli import main
from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import demo_scenario
from exporter.simulator.server import SimulatorServer, run_simulator_in_thread
from exporter.simulator.simulator import Simulator
from tests.test_simulator_wire import START, SignedClient

HZ1 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_server_tells_its_port_endpoint_and_url() -> None:
    async with SimulatorServer(Simulator(demo_scenario())) as server:
        assert server.port > 0
        assert server.endpoint == f"127.0.0.1:{server.port}"
        assert server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(verify=False) as http:
            assert (await http.get(f"{server.url}/_simulator/stats")).status_code == 200


async def test_server_on_a_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=str(port)):
            await SimulatorServer(Simulator(demo_scenario()), port=port).start()


async def test_stopping_the_server_drops_a_request_stuck_in_a_timeout_fault() -> None:
    clock = ManualClock(START)
    simulator = Simulator(demo_scenario(), clock=clock)
    hang = simulator.faults.add(Fault.timeout())  # an hour
    async with httpx.AsyncClient(verify=False, timeout=30) as http:
        server = SimulatorServer(simulator)
        await server.start()
        client = SignedClient(http, server, clock)
        stuck = asyncio.create_task(client.call("GetVpnGatewayDiagnoseResult", **HZ1))
        while not hang.fired:
            await asyncio.sleep(0.01)
        # generous bound: proves stop() does not wait out the hour, not how fast it is
        await asyncio.wait_for(server.stop(), timeout=10)
        with pytest.raises(httpx.TransportError):
            await stuck


def test_simulator_in_a_thread_serves_synchronous_clients() -> None:
    with (
        run_simulator_in_thread(Simulator(demo_scenario())) as server,
        httpx.Client(verify=False) as http,
    ):
        response = http.get(f"{server.url}/_simulator/stats")
        assert response.json() == {"calls": {}, "failures": {}}


def test_simulate_serves_a_generated_fleet_until_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from exporter.simulator.cli import main; sys.exit(main(sys.argv[1:]))",
            f"--listen-address=127.0.0.1:{port}",
            "--gateways=30",
            "--regions=cn-hangzhou,ap-southeast-1",
            "--no-throttling",
        ],
        cwd=Path(__file__).parent.parent,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10  # generous: only proves it comes up at all
        while True:
            try:
                stats = httpx.get(f"http://127.0.0.1:{port}/_simulator/stats", verify=False)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not come up"
                time.sleep(0.05)
        assert stats.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"simulator listening on http://127.0.0.1:{port}: 30 gateways" in stderr
    assert "throttling off" in stderr


def test_simulate_with_a_bad_scenario_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("key_pairs: []\n")
    assert main(["--scenario", str(bad)]) == 1
    assert "bad.yaml: key_pairs" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:99999", "127.0.0.1:"])
def test_simulate_with_a_bad_listen_address_exits_1(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([f"--listen-address={address}"]) == 1
    assert "--listen-address" in capsys.readouterr().err


def test_simulate_refuses_a_scenario_and_generated_gateways_together() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--scenario", "x.yaml", "--gateways", "3"])
    assert raised.value.code == 2
