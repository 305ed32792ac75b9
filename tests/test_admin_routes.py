"""Creating and listing routes through the admin API, end to end over HTTP: answers,
waiting, dry runs, the pre-check, serialisation per connection, audit lines and metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator.clock import ManualClock
from exporter.simulator.routes import RouteEntry, RouteTable
from tests.admin_harness import (
    CONNECTION,
    FAKE_TIME,
    FAST,
    REGION,
    ROUTE,
    SECOND_CONNECTION,
    AdminHarness,
    routes_scenario,
    running_admin,
)
from tests.fakes import FakeClock

ROUTES_URL = f"/api/v1/vpn-connections/{CONNECTION}/routes"
LOCATION = f"{ROUTES_URL}?region_id={REGION}"


def route(third: int, **changes: Any) -> dict[str, Any]:
    return {**ROUTE, "route_dest": f"192.168.{third}.0/24", **changes}


async def listed(admin: AdminHarness, connection_id: str = CONNECTION) -> dict[str, Any]:
    response = await admin.http.get(
        f"/api/v1/vpn-connections/{connection_id}/routes", params={"region_id": REGION}
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_create_answers_202_with_location_of_the_connection_routes(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.create()
        assert response.status_code == 202
        assert response.headers["location"] == LOCATION
        body = response.json()
        assert (body["status"], body["route"]["route_dest"]) == ("pending", "192.168.10.0/24")
        assert body["request_id"]
        assert admin.routes_of(CONNECTION) == [("192.168.10.0/24", CONNECTION, 100)]


async def test_the_location_lists_the_new_route_and_the_connection_state(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        location = (await admin.create()).headers["location"]
        response = await admin.http.get(location)
        assert response.status_code == 200
        document = response.json()
        assert document["connection_state"] == "attached"
        assert [(r["route_dest"], r["weight"], r["state"]) for r in document["routes"]] == [
            ("192.168.10.0/24", 100, "published")
        ]


async def test_create_sends_every_field_and_a_client_token(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        body = route(10, description="to branch 7", overlay_mode="Ipsec", weight=0)
        assert (await admin.create(body)).status_code == 202
        (create,) = admin.creates()
        assert create.params["RouteDest"] == "192.168.10.0/24"
        assert create.params["NextHop"] == CONNECTION
        assert create.params["Weight"] == "0"
        assert create.params["Description"] == "to branch 7"
        assert create.params["OverlayMode"] == "Ipsec"
        assert create.params["RegionId"] == REGION
        assert len(create.params["ClientToken"]) == 36


async def test_the_answer_names_the_client_token_to_retry_with(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        body = (await admin.create()).json()
        assert body["idempotency_key"] == admin.creates()[0].params["ClientToken"]


async def test_wait_answers_201_with_the_route_once_the_connection_settled(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with running_admin(
        tmp_path, scenario=routes_scenario(settle_seconds=30), simulator_clock=clock
    ) as admin:
        answer = asyncio.create_task(admin.create(params={"wait": "true"}))
        await admin.until_calls("CreateVcoRouteEntry", 1)
        polls = len(admin.calls("DescribeVpnConnections"))
        await admin.until_calls("DescribeVpnConnections", polls + 3)  # still updating
        assert not answer.done()
        clock.advance(30)
        response = await answer
        assert response.status_code == 201, response.text
        assert response.headers["location"] == LOCATION
        body = response.json()
        assert (body["status"], body["route"]["state"]) == ("created", "published")


async def test_wait_that_times_out_answers_202(tmp_path: Path) -> None:
    # The simulator's clock never moves, so the connection never settles; the admin API's
    # fake clock runs its wait out at once.
    async with running_admin(
        tmp_path,
        scenario=routes_scenario(settle_seconds=30),
        simulator_clock=ManualClock(),
        clock=FakeClock(),
    ) as admin:
        response = await admin.create(params={"wait": "true"})
        assert response.status_code == 202
        assert response.json()["status"] == "pending"


async def test_dry_run_answers_200_and_creates_nothing(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.create(route(10, dry_run=True))
        assert response.status_code == 200
        body = response.json()
        assert body["dry_run"] is True
        assert body["route"]["route_dest"] == "192.168.10.0/24"
        assert body["request_id"]
        (create,) = admin.creates()
        assert (create.params["DryRun"], create.code) == ("true", "DryRunOperation")
        assert admin.routes_of(CONNECTION) == []


async def test_dry_run_reports_the_problem_a_create_would_meet(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        # A route into the connection's own subnet (a next hop of another connection is
        # refused before the cloud is asked, issue 12).
        response = await admin.create({**ROUTE, "route_dest": "10.1.2.0/24", "dry_run": True})
        assert response.status_code == 409
        assert response.json()["code"] == "VpnRouteEntry.Conflict"


async def test_an_existing_route_is_409_without_calling_create(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        assert (await admin.create()).status_code == 202
        response = await admin.create(route(10, weight=0))
        assert response.status_code == 409
        assert response.json()["type"].endswith(":route-exists")
        assert len(admin.creates()) == 1


async def test_listing_reads_every_page_of_routes(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        table = admin.simulator.state.extension(RouteTable)
        for number in range(120):
            table.of(CONNECTION).append(
                RouteEntry(CONNECTION, f"10.200.{number}.0/24", CONNECTION, 100, "", "Ipsec", 0)
            )
        document = await listed(admin)
        assert document["total_count"] == 120
        assert len({r["route_dest"] for r in document["routes"]}) == 120
        pages = [int(c.params["PageNumber"]) for c in admin.calls("DescribeVcoRouteEntries")]
        assert pages == [1, 2, 3]


async def test_listing_can_filter_by_route_entry_type(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        await admin.create()
        response = await admin.http.get(
            ROUTES_URL, params={"region_id": REGION, "route_entry_type": "bgp"}
        )
        assert response.json()["routes"] == []
        assert admin.calls("DescribeVcoRouteEntries")[-1].params["RouteEntryType"] == "bgp"


async def test_listing_an_unknown_connection_is_404(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.http.get(
            "/api/v1/vpn-connections/vco-nosuch/routes", params={"region_id": REGION}
        )
        assert response.status_code == 404
        assert response.json()["type"].endswith(":connection-not-found")


async def test_ten_different_routes_on_one_connection_all_succeed_one_at_a_time(
    tmp_path: Path,
) -> None:
    # The connection stays `updating` for a moment after each create: creates that were
    # not serialised would meet TaskConflict.
    async with running_admin(tmp_path, scenario=routes_scenario(settle_seconds=0.02)) as admin:
        responses = await asyncio.gather(*(admin.create(route(n)) for n in range(10)))
        assert [r.status_code for r in responses] == [202] * 10
        assert sorted(dest for dest, _, _ in admin.routes_of(CONNECTION)) == sorted(
            f"192.168.{n}.0/24" for n in range(10)
        )
        assert [c.code for c in admin.creates()] == [None] * 10
        times = [c.time for c in admin.creates()]
        assert all(later - earlier >= 0.02 for earlier, later in itertools.pairwise(times))


async def test_creates_on_different_connections_do_not_wait_for_each_other(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    async with running_admin(
        tmp_path, scenario=routes_scenario(settle_seconds=30), simulator_clock=clock
    ) as admin:
        first = await admin.create()
        second = await admin.create(route(10, next_hop=SECOND_CONNECTION), SECOND_CONNECTION)
        assert (first.status_code, second.status_code) == (202, 202)


async def test_a_create_on_a_connection_still_updating_waits_for_it(tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_admin(
        tmp_path, scenario=routes_scenario(settle_seconds=30), simulator_clock=clock
    ) as admin:
        assert (await admin.create()).status_code == 202
        second = asyncio.create_task(admin.create(route(11)))
        polls = len(admin.calls("DescribeVpnConnections"))
        await admin.until_calls("DescribeVpnConnections", polls + 3)  # waiting for it
        assert len(admin.creates()) == 1
        clock.advance(30)
        assert (await second).status_code == 202
        assert [c.code for c in admin.creates()] == [None, None]


async def test_a_connection_that_stays_updating_past_the_deadline_is_503(tmp_path: Path) -> None:
    async with running_admin(
        tmp_path,
        scenario=routes_scenario(settle_seconds=30),
        simulator_clock=ManualClock(),
        clock=FakeClock(),
    ) as admin:
        assert (await admin.create()).status_code == 202
        response = await admin.create(route(11))
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(int(FAKE_TIME.retry_after))
        assert len(admin.creates()) == 1


async def test_each_create_attempt_writes_one_audit_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_admin(tmp_path) as admin:
        with caplog.at_level(logging.INFO, logger="exporter.admin.audit"):
            response = await admin.create(route(10, description="branch"))
        (line,) = [r for r in caplog.records if r.name == "exporter.admin.audit"]
        fields = line.fields  # type: ignore[attr-defined]
        assert fields["outcome"] == "pending"
        assert fields["status"] == 202
        assert fields["user"] == "alice"
        assert fields["auth"] == "basic"
        assert fields["remote_addr"] == "127.0.0.1"
        assert fields["vpn_connection_id"] == CONNECTION
        assert fields["route_dest"] == "192.168.10.0/24"
        assert (fields["next_hop"], fields["weight"]) == (CONNECTION, 100)
        assert fields["description"] == "branch"
        assert fields["request_id"] == response.json()["request_id"]
        assert fields["create_calls"] == 1


async def test_successful_requests_are_counted_without_failures(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        await admin.create()
        await listed(admin)
        assert admin.metric("aliyun_vpn_admin_requests_total", {"operation": "create_route"}) == 1
        assert admin.metric("aliyun_vpn_admin_requests_total", {"operation": "list_routes"}) == 1
        samples = [
            s
            for metric in admin.metrics.registry.collect()
            if metric.name == "aliyun_vpn_admin_request_failures"
            for s in metric.samples
        ]
        assert samples == []


async def test_creates_that_cannot_start_before_their_deadline_are_503(tmp_path: Path) -> None:
    # One waits for the connection to settle, the other for its turn; neither gets it.
    settings = dataclasses.replace(FAST, deadline=0.2)
    async with running_admin(
        tmp_path,
        scenario=routes_scenario(settle_seconds=30),
        simulator_clock=ManualClock(),
        settings=settings,
    ) as admin:
        assert (await admin.create()).status_code == 202
        responses = await asyncio.gather(admin.create(route(11)), admin.create(route(12)))
        assert [r.status_code for r in responses] == [503, 503]
        assert all(r.json()["type"].endswith(":upstream-busy") for r in responses)
        assert len(admin.creates()) == 1
