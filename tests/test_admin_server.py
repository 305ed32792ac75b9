"""Stopping the admin listener: requests in flight finish (within a bound), new ones are
refused meanwhile, and the rest are cancelled once the grace period is over."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx

from exporter.simulator.clock import ManualClock
from tests.admin_harness import FAST, AdminHarness, routes_scenario, running_admin


async def until_waiting_on_the_connection(admin: AdminHarness) -> None:
    """Return once a create was sent and its request polls the connection."""
    await admin.until_calls("CreateVcoRouteEntry", 1)
    await admin.until_calls(
        "DescribeVpnConnections", len(admin.calls("DescribeVpnConnections")) + 2
    )


async def test_stop_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_admin(
        tmp_path, scenario=routes_scenario(settle_seconds=30), simulator_clock=clock
    ) as admin:
        waiting = asyncio.create_task(admin.create(params={"wait": "true"}))
        await until_waiting_on_the_connection(admin)
        stopping = asyncio.create_task(admin.server.stop())
        await until_waiting_on_the_connection(admin)
        assert not stopping.done()
        clock.advance(30)
        assert (await waiting).status_code == 201
        await stopping


async def test_requests_arriving_while_stopping_are_refused_with_503(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_admin(
        tmp_path, scenario=routes_scenario(settle_seconds=30), simulator_clock=clock
    ) as admin:
        waiting = asyncio.create_task(admin.create(params={"wait": "true"}))
        await until_waiting_on_the_connection(admin)
        stopping = asyncio.create_task(admin.server.stop())
        await asyncio.sleep(0)  # let the stop begin: it refuses new requests at once
        async with httpx.AsyncClient(
            base_url=str(admin.http.base_url), headers=dict(admin.http.headers)
        ) as other:
            response = await other.get("/api/v1/openapi.json")
        assert response.status_code == 503
        assert response.json()["type"].endswith(":shutting-down")
        assert response.headers["retry-after"]
        clock.advance(30)
        await waiting
        await stopping


async def test_stop_cancels_what_is_still_running_after_the_grace_period(tmp_path: Path) -> None:
    settings = dataclasses.replace(FAST, stop_grace=0.1, wait_timeout=3600.0)
    async with running_admin(
        tmp_path,
        scenario=routes_scenario(settle_seconds=30),
        simulator_clock=ManualClock(),
        settings=settings,
    ) as admin:
        waiting = asyncio.create_task(admin.create(params={"wait": "true"}))
        await until_waiting_on_the_connection(admin)
        async with asyncio.timeout(10):
            await admin.server.stop()
        response = await waiting
        assert response.status_code == 503
        assert "outcome is unknown" in response.json()["detail"]
