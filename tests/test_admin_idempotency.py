"""`Idempotency-Key` end to end: one route however often a request is sent, the first
answer given again, a key reused for another request refused, and ClientTokens reused
across retries (ours and the caller's)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from exporter.simulator.faults import Fault
from exporter.simulator.simulator import Simulator
from tests.admin_harness import CONNECTION, FAST, ROUTE, routes_scenario, running_admin
from tests.fakes import FakeClock

KEY = {"Idempotency-Key": "6f1c6a3e-2d1b-4c55-9d43-0e3c1a2b7f10"}


async def test_twenty_concurrent_requests_with_one_key_create_exactly_one_route(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        responses = await asyncio.gather(*(admin.create(headers=KEY) for _ in range(20)))
        assert [r.status_code for r in responses] == [202] * 20
        assert len({r.content for r in responses}) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
        assert len(admin.creates()) == 1
        assert admin.routes_of(CONNECTION) == [("192.168.10.0/24", CONNECTION, 100)]


async def test_the_key_becomes_the_client_token(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        await admin.create(headers=KEY)
        assert admin.creates()[0].params["ClientToken"] == KEY["Idempotency-Key"]


async def test_the_same_key_and_body_later_return_the_first_answer_without_a_cloud_call(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        first = await admin.create(headers=KEY)
        calls = len(admin.cloud_calls())
        again = await admin.create(headers=KEY)
        assert (again.status_code, again.content) == (first.status_code, first.content)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == first.headers["location"]
        assert len(admin.cloud_calls()) == calls


async def test_the_same_key_with_a_different_body_is_422_without_a_cloud_call(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        await admin.create(headers=KEY)
        calls = len(admin.cloud_calls())
        response = await admin.create({**ROUTE, "route_dest": "192.168.11.0/24"}, headers=KEY)
        assert response.status_code == 422
        assert response.json()["type"].endswith(":idempotency-key-reused")
        assert len(admin.cloud_calls()) == calls


async def test_a_refusal_is_replayed_as_well(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(
            Fault.error("VpnRouteEntry.Conflict", action="CreateVcoRouteEntry", times=1)
        )
        first = await admin.create(headers=KEY)
        again = await admin.create(headers=KEY)
        assert (first.status_code, again.status_code) == (409, 409)
        assert again.content == first.content
        assert len(admin.creates()) == 1


async def test_a_busy_answer_is_not_kept_so_a_retry_with_the_key_runs_again(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        fault = admin.simulator.faults.add(
            Fault.error("TaskConflict", action="CreateVcoRouteEntry")
        )
        assert (await admin.create(headers=KEY)).status_code == 503
        admin.simulator.faults.remove(fault.id)
        assert (await admin.create(headers=KEY)).status_code == 202
        tokens = {create.params["ClientToken"] for create in admin.creates()}
        assert tokens == {KEY["Idempotency-Key"]}


async def test_without_a_key_each_request_has_its_own_client_token(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        await admin.create()
        await admin.create({**ROUTE, "route_dest": "192.168.11.0/24"})
        first, second = (create.params["ClientToken"] for create in admin.creates())
        assert first != second


async def test_without_a_key_the_generated_token_is_reused_across_retries(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(
            Fault.error("TaskConflict", action="CreateVcoRouteEntry", times=2)
        )
        assert (await admin.create()).status_code == 202
        creates = admin.creates()
        assert [c.code for c in creates] == ["TaskConflict", "TaskConflict", None]
        assert len({c.params["ClientToken"] for c in creates}) == 1


async def test_after_a_restart_the_cloud_honours_the_key_and_creates_no_second_route(
    tmp_path: Path,
) -> None:
    simulator = Simulator(routes_scenario(), throttling=False)
    async with running_admin(tmp_path, simulator=simulator) as before:
        first = await before.create(headers=KEY)
    async with running_admin(tmp_path, simulator=simulator) as after:
        again = await after.create(headers=KEY)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json()["route"] == first.json()["route"]
        assert after.routes_of(CONNECTION) == [("192.168.10.0/24", CONNECTION, 100)]


async def test_keys_expire_after_their_time_to_live(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = dataclasses.replace(FAST, idempotency_ttl=60.0)
    async with running_admin(tmp_path, clock=clock, settings=settings) as admin:
        await admin.create(headers=KEY)
        clock.advance(61)
        response = await admin.create({**ROUTE, "route_dest": "192.168.11.0/24"}, headers=KEY)
        # The store forgot the key; the cloud still knows the ClientToken.
        assert response.json()["code"] == "IdempotentParameterMismatch"
