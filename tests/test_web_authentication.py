"""Authentication of the listeners under attack (issue 12), over real sockets: timing that
does not tell which users exist (defect 4) and failures logged once per address, then
summed up (defect 10)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import bcrypt
import httpx
import pytest

from exporter.app import Exporter, ListenSettings
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry import log_limit
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web import authentication
from exporter.web.web_config import WebConfig
from tests.admin_harness import admin_config, routes_scenario
from tests.process_harness import BOUND

CHEAP = bcrypt.hashpw(b"cheap password", bcrypt.gensalt(rounds=4)).decode()
COSTLY = bcrypt.hashpw(b"costly password", bcrypt.gensalt(rounds=6)).decode()


@contextlib.asynccontextmanager
async def protected(users: dict[str, str]) -> AsyncIterator[str]:
    """The real metrics listener behind basic auth; yields its /metrics URL."""
    async with SimulatorServer(Simulator(routes_scenario(), throttling=False)) as server:
        exporter = Exporter(
            admin_config(server.url, enabled=False),
            listen=ListenSettings(
                address="127.0.0.1:0",
                web_config=WebConfig.model_validate({"basic_auth_users": users}),
            ),
            metrics=SelfMetrics(),
        )
        await exporter.start()
        try:
            yield f"http://127.0.0.1:{exporter.listener.port}/metrics"
        finally:
            await exporter.stop()


async def test_defect_4_every_user_known_or_not_costs_the_same_bcrypt_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[int] = []
    real = authentication.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        checked.append(authentication.bcrypt_cost(hashed))
        return real(password, hashed)

    monkeypatch.setattr(authentication, "checkpw", spy)
    async with (
        protected({"cheap": CHEAP, "costly": COSTLY}) as url,
        httpx.AsyncClient(timeout=BOUND) as http,
    ):
        work = {}
        for user in ("cheap", "costly", "nobody"):
            checked.clear()
            answer = await http.get(url, auth=(user, "wrong"))
            assert answer.status_code == 401
            work[user] = sorted(checked)
        assert work == {"cheap": [4, 6], "costly": [4, 6], "nobody": [4, 6]}
        assert (await http.get(url, auth=("cheap", "cheap password"))).status_code == 200


async def test_defect_10_a_flood_of_failed_logins_logs_one_line_then_a_count(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(log_limit, "WINDOW", 0.5)
    caplog.set_level(logging.INFO, logger="exporter.web.authentication")
    async with protected({"cheap": CHEAP}) as url, httpx.AsyncClient(timeout=BOUND) as http:
        answers = await asyncio.gather(*(http.get(url, auth=("cheap", "no")) for _ in range(30)))
        assert {a.status_code for a in answers} == {401}
        async with asyncio.timeout(BOUND):
            while not any(
                r.getMessage() == "failed authentication attempts" for r in caplog.records
            ):
                await asyncio.sleep(0.05)
        lines = [r for r in caplog.records if r.name == "exporter.web.authentication"]
        assert [r.getMessage() for r in lines] == [
            "authentication failed",
            "failed authentication attempts",
        ]
        summary = lines[1].fields  # type: ignore[attr-defined]
        assert (summary["remote_addr"], summary["count"]) == ("127.0.0.1", 29)
