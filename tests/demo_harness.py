"""Running the exporter for tests: the demo in-process, or the CLI as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from exporter.app import Exporter, ListenSettings
from exporter.demo import demo_config, running_demo_simulator
from exporter.telemetry.self_metrics import SelfMetrics

STARTUP_BOUND = 20.0
"""A generous bound on start-up: proves a process answers at all, not how fast."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_demo_exporter(
    address: str = "127.0.0.1:0", *, update: Mapping[str, Any] | None = None
) -> AsyncIterator[Exporter]:
    """The demo exporter in this event loop, once every demo gateway has been polled;
    `update` replaces top-level sections of the demo config (`{"web": WebSettings(...)}`)."""
    async with running_demo_simulator() as endpoint:
        config = demo_config(endpoint).model_copy(update=update)
        instance = Exporter(config, listen=ListenSettings(address=address), metrics=SelfMetrics())
        await instance.start()
        try:
            deadline = time.monotonic() + STARTUP_BOUND
            while not all(r.last_poll for r in instance.fleet.records.values()):
                assert time.monotonic() < deadline, "not every demo gateway was polled"
                await asyncio.sleep(0.01)
            yield instance
        finally:
            await instance.stop()


@contextlib.contextmanager
def cli_process(*args: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """`python -m exporter ARGS…` once it accepts connections on `port`; SIGTERM at exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_BOUND
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"nothing listens on {port}"
                time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
