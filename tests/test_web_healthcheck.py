"""`aliyun-vpn-exporter healthcheck` against a health listener: exit 0 on 200, else 1 with
the listener's own line (or why it could not be reached) on stderr."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exporter.web.health_app import Check, build_health_app
from exporter.web.healthcheck import main
from exporter.web.listener import Listener
from tests.demo_harness import free_port


async def serving(healthy: Check, ready: Check) -> AsyncIterator[str]:
    listener = Listener(build_health_app(healthy=healthy, ready=ready), "127.0.0.1:0", None)
    await listener.start()
    try:
        yield f"127.0.0.1:{listener.port}"
    finally:
        await listener.stop()


@pytest.fixture
async def starting() -> AsyncIterator[str]:
    """A listener of an exporter alive but not ready yet."""
    async for address in serving(lambda: (True, "ok"), lambda: (False, "starting")):
        yield address


async def check(*args: str) -> int:
    # The check blocks on its HTTP call: off the loop that serves the listener.
    return await asyncio.to_thread(main, list(args))


async def test_alive_is_exit_0_with_the_answer_on_stdout(
    starting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await check(f"--address={starting}") == 0
    assert capsys.readouterr().out == f"http://{starting}/healthz: 200 ok\n"


async def test_not_ready_is_exit_1_with_the_reason_on_stderr(
    starting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await check(f"--address={starting}", "--ready") == 1
    assert capsys.readouterr().err == f"http://{starting}/readyz: 503 starting\n"


async def test_an_address_without_host_asks_loopback(
    starting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = starting.rpartition(":")[2]
    assert await check(f"--address=:{port}") == 0
    assert capsys.readouterr().out.startswith(f"http://127.0.0.1:{port}/healthz: 200")


async def test_nothing_listening_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert await check(f"--address=127.0.0.1:{port}", "--timeout=2") == 1
    assert "Connection refused" in capsys.readouterr().err
