"""Reloads that cannot hold the process hostage (issue 12, defects 6 and 11): a `!file` on
a FIFO nobody writes to, a flood of wrong passwords, and a reload that ends a fault."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.app import Exporter, ListenSettings
from exporter.config.loader import load_config
from exporter.process.reload import Reloader
from exporter.simulator.faults import Fault
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.web_config import WebConfig
from tests.admin_harness import KEY_SECRET, routes_scenario
from tests.process_harness import (
    BOUND,
    config_document,
    exporter_process,
    simulator_thread,
    write_yaml,
)

RESULT = "GetVpnGatewayDiagnoseResult"


def fifo_config(directory: Path, endpoint: str) -> dict[str, object]:
    """A config whose access key secret is a `!file` on a FIFO nobody writes to."""
    fifo = directory / "secret.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    document = config_document(endpoint)
    document["credentials"]["default"]["access_key_secret"] = "FIFO"  # type: ignore[index]
    return document


def write_fifo_config(path: Path, endpoint: str) -> Path:
    write_yaml(path, fifo_config(path.parent, endpoint))
    text = path.read_text().replace("FIFO", f"!file {path.parent / 'secret.fifo'}")
    path.write_text(text)
    return path.parent / "secret.fifo"


def test_defect_6_sigterm_during_a_reload_stuck_on_a_fifo_exits_0(tmp_path: Path) -> None:
    with (
        simulator_thread() as (_, url),
        exporter_process(tmp_path, config_document(url)) as process,
    ):
        write_fifo_config(process.config, url)
        deadline = time.monotonic() + BOUND
        while "reloading the configuration" not in process.log():
            # Again until heard: a SIGHUP before the start has finished is ignored.
            process.popen.send_signal(signal.SIGHUP)
            assert time.monotonic() < deadline, "the reload never started"
            time.sleep(0.2)
        time.sleep(0.2)  # the load is now blocked opening the FIFO
        process.popen.send_signal(signal.SIGTERM)
        try:
            code = process.popen.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM hung behind a reload reading a FIFO")
        assert code == 0
        assert "stopped" in process.log()


def opening_a_fifo(pid: int) -> bool:
    """Whether a thread of the process is blocked opening a FIFO (waiting for a writer)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/task/{task}/wchan").read_text() == "wait_for_partner":
                return True
    return False


def test_defect_6_sigterm_during_a_start_stuck_on_a_fifo_exits_0(tmp_path: Path) -> None:
    with simulator_thread() as (_, url):
        config = tmp_path / "config.yml"
        write_fifo_config(config, url)
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", f"--config.file={config}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + BOUND
            while not opening_a_fifo(popen.pid):
                assert popen.poll() is None and time.monotonic() < deadline, "no FIFO opened"
                time.sleep(0.05)
            popen.send_signal(signal.SIGTERM)
            output, _ = popen.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM hung behind a start reading a FIFO")
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
        assert popen.returncode == 0, output
        assert b"stopped while reading the configuration" in output


@dataclass
class Running:
    simulator: Simulator
    exporter: Exporter
    reloader: Reloader
    config_file: Path
    endpoint: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.listener.port}"


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    interval: str = "1h",
    web_config: WebConfig | None = None,
    load_timeout: float = 30.0,
) -> AsyncIterator[Running]:
    """The exporter in this loop with `/-/reload` on its metrics listener."""
    simulator = Simulator(routes_scenario(), throttling=False)
    async with SimulatorServer(simulator) as server:
        config_file = tmp_path / "config.yml"
        document = config_document(server.url)
        document["poll"] = {"interval": interval}
        write_yaml(config_file, document)
        reloader = Reloader(
            lambda: load_config(config_file), SelfMetrics(), load_timeout=load_timeout
        )
        exporter = Exporter(
            load_config(config_file),
            listen=ListenSettings(
                address="127.0.0.1:0",
                web_config=web_config,
                lifecycle=reloader.endpoint("metrics"),
            ),
            metrics=SelfMetrics(),
        )
        reloader.bind(exporter)
        await exporter.start()
        try:
            yield Running(simulator, exporter, reloader, config_file, server.url)
        finally:
            await reloader.close()
            await exporter.stop()


async def test_defect_6_a_load_stuck_on_a_fifo_fails_at_its_deadline_and_holds_nothing(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, load_timeout=0.5) as rig, httpx.AsyncClient(timeout=BOUND) as http:
        fifo = write_fifo_config(rig.config_file, rig.endpoint)
        stuck = await http.post(f"{rig.url}/-/reload")
        assert stuck.status_code == 500
        assert "took more than 0.5 s" in stuck.text
        # The stuck load is not repeated on top of itself.
        again = await http.post(f"{rig.url}/-/reload")
        assert again.status_code == 500
        assert "still stuck" in again.text
        assert (await http.get(f"{rig.url}/metrics")).status_code == 200
        # Once something writes to the FIFO the stuck load ends, and reloads work again.
        with open(fifo, "w") as writer:  # the stuck reader is there: no wait
            writer.write(KEY_SECRET)
        write_yaml(rig.config_file, config_document(rig.endpoint))
        async with asyncio.timeout(BOUND):
            while True:
                answer = await http.post(f"{rig.url}/-/reload")
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.05)


async def test_defect_6_a_reload_is_not_held_up_by_a_flood_of_wrong_passwords(
    tmp_path: Path,
) -> None:
    costly = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()
    web = WebConfig.model_validate({"basic_auth_users": {"alice": costly}})
    async with running(tmp_path, web_config=web) as rig, httpx.AsyncClient(timeout=60) as http:
        flood_size = 30  # within what one address may hold at once
        answered = 0

        async def wrong(number: int) -> None:
            nonlocal answered
            await http.get(f"{rig.url}/metrics", auth=("alice", f"guess {number}"))
            answered += 1

        flood = [asyncio.ensure_future(wrong(number)) for number in range(flood_size)]
        await asyncio.sleep(0.3)  # every wrong password is now queued for bcrypt
        outcome = await rig.reloader.reload("test")
        answered_when_reloaded = answered
        await asyncio.gather(*flood)
        assert outcome.success
        assert answered_when_reloaded < flood_size // 2


async def test_defect_11_a_reload_that_ends_a_fault_logs_poll_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.collect.poller")

    def logged(message: str) -> bool:
        return any(r.getMessage().startswith(message) for r in caplog.records)

    async with running(tmp_path, interval="1s") as rig:
        rig.simulator.faults.add(Fault.error("InternalError", action=RESULT))
        async with asyncio.timeout(BOUND):
            while not logged("poll failed"):
                await asyncio.sleep(0.02)
        document = config_document(rig.endpoint)
        document["poll"] = {"interval": "2s"}
        write_yaml(rig.config_file, document)
        assert (await rig.reloader.reload("test")).changed
        rig.simulator.faults.clear()
        async with asyncio.timeout(BOUND):
            while not logged("poll recovered"):
                await asyncio.sleep(0.02)
