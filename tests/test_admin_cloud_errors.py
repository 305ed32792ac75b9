"""Every error of CreateVcoRouteEntry end to end: the simulator answers it, the exporter
maps it, the caller sees a deliberate status and a problem document with the cloud's
Code, Message and RequestId. Transient codes are retried with one ClientToken until the
deadline; the admin API's clock is fake, so "until the deadline" takes no time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exporter.admin.problems import CLOUD_CODES
from exporter.simulator.faults import Fault
from tests.admin_harness import (
    CONNECTION,
    FAKE_TIME,
    LOCKED_CONNECTION,
    REGION,
    ROUTE,
    running_admin,
)
from tests.fakes import FakeClock

CREATE = "CreateVcoRouteEntry"

PAGE_CODES = {
    "Resource.QuotaFull": (409, "quota-exceeded"),
    "VpnConnection.Configuring": (503, "upstream-busy"),
    "VpnConnection.FinancialLocked": (409, "connection-locked"),
    "VpnRouteEntry.AlreadyExists": (409, "route-exists"),
    "VpnRouteEntry.Conflict": (409, "route-conflict"),
    "VpnRouteEntry.ConflictSSL": (409, "route-conflict"),
    "VpnRouteEntry.BackupRoute": (409, "route-conflict"),
    "InvalidNextHop.NotFound": (422, "invalid-route"),
    "IllegalParam.RouteDest": (422, "invalid-route"),
    "OperationFailed.InvalidCidrBlock": (422, "invalid-route"),
    "QuotaExceeded.VpnRouteEntry": (409, "quota-exceeded"),
    "TaskConflict": (503, "upstream-busy"),
    "Forbbiden.SubUser": (502, "upstream-permission-denied"),
    "Forbidden": (502, "upstream-permission-denied"),
    "InvalidVpnConnectionInstanceId.NotFound": (404, "connection-not-found"),
}
"""Every code of the CreateVcoRouteEntry page and the status the README promises."""

OTHER_CODES = {
    "Forbidden.RAM": (502, "upstream-permission-denied"),
    "IdempotentParameterMismatch": (422, "idempotency-key-reused"),
    "InvalidParameter": (422, "invalid-route"),
    "ServiceUnavailable": (503, "upstream-busy"),
    "VpnGateway.Configuring": (503, "upstream-busy"),
    "Appliance.Configuring": (503, "upstream-busy"),
    "VpnTask.CONFLICT": (503, "upstream-busy"),
    "InternalError": (502, "upstream-error"),
    "SomethingNew.Undocumented": (502, "upstream-error"),
}


def test_every_code_of_the_page_is_mapped_deliberately() -> None:
    assert PAGE_CODES.keys() <= CLOUD_CODES.keys()
    for code, (status, slug) in PAGE_CODES.items():
        assert (CLOUD_CODES[code].status, CLOUD_CODES[code].slug) == (status, slug), code


@pytest.mark.parametrize(
    ("code", "status", "slug"), [(code, *expected) for code, expected in PAGE_CODES.items()]
)
async def test_each_error_code_of_the_page_reaches_the_caller_as_its_status(
    tmp_path: Path, code: str, status: int, slug: str
) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        admin.simulator.faults.add(Fault.error(code, action=CREATE))
        response = await admin.create()
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == f"urn:aliyun-vpn-exporter:problem:{slug}"
        assert problem["status"] == status
        assert problem["code"] == code
        assert problem["message"]
        assert problem["request_id"]
        assert problem["instance"] == f"/api/v1/vpn-connections/{CONNECTION}/routes"


@pytest.mark.parametrize(
    ("code", "status", "slug"), [(code, *expected) for code, expected in OTHER_CODES.items()]
)
async def test_other_cloud_codes_reach_the_caller_as_their_status(
    tmp_path: Path, code: str, status: int, slug: str
) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        admin.simulator.faults.add(Fault.error(code, action=CREATE, status=None))
        response = await admin.create()
        assert response.status_code == status, response.text
        assert response.json()["type"].endswith(f":{slug}")
        assert response.json()["code"] == code


async def test_a_permission_error_names_the_missing_ram_action(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("Forbidden", action=CREATE))
        problem = (await admin.create()).json()
        assert problem["missing_permission"] == "vpc:CreateVcoRouteEntry"
        assert "vpc:CreateVcoRouteEntry" in problem["detail"]


async def test_a_permission_error_while_listing_names_that_action(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("Forbidden", action="DescribeVcoRouteEntries"))
        response = await admin.http.get(
            f"/api/v1/vpn-connections/{CONNECTION}/routes", params={"region_id": REGION}
        )
        assert response.status_code == 502
        assert response.json()["missing_permission"] == "vpc:DescribeVcoRouteEntries"


async def test_refused_credentials_are_502_without_the_cloud_message(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("SignatureDoesNotMatch", action=CREATE, status=400))
        problem = (await admin.create()).json()
        assert problem["status"] == 502
        assert problem["type"].endswith(":upstream-authentication-failed")
        assert "message" not in problem


async def test_transient_codes_are_retried_with_the_same_client_token(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        # The n-th create meets the n-th code, then one goes through.
        for nth, code in enumerate(("TaskConflict", "VpnConnection.Configuring", "Throttling"), 1):
            admin.simulator.faults.add(Fault.error(code, action=CREATE, every=nth, times=1))
        response = await admin.create()
        assert response.status_code == 202
        creates = admin.creates()
        assert [c.code for c in creates] == [
            "TaskConflict",
            "VpnConnection.Configuring",
            "Throttling",
            None,
        ]
        assert len({c.params["ClientToken"] for c in creates}) == 1


async def test_a_definite_refusal_is_not_retried(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("VpnRouteEntry.Conflict", action=CREATE))
        assert (await admin.create()).status_code == 409
        assert len(admin.creates()) == 1


async def test_throttling_after_retries_is_503_with_the_cloud_retry_after(tmp_path: Path) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        admin.simulator.faults.add(Fault.throttle(retry_after_ms=1500, action=CREATE))
        response = await admin.create()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        assert response.json()["code"] == "Throttling.User"
        assert len(admin.creates()) > 2


async def test_still_configuring_after_retries_is_503_with_a_default_retry_after(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        admin.simulator.faults.add(Fault.error("VpnConnection.Configuring", action=CREATE))
        response = await admin.create()
        assert response.status_code == 503
        assert response.headers["retry-after"] == str(int(FAKE_TIME.retry_after))


async def test_retries_stop_at_the_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = dataclasses.replace(FAKE_TIME, deadline=10.0, retry_base=4.0, retry_cap=4.0)
    async with running_admin(tmp_path, clock=clock, settings=settings) as admin:
        admin.simulator.faults.add(Fault.error("TaskConflict", action=CREATE))
        start = clock.monotonic()
        assert (await admin.create()).status_code == 503
        assert clock.monotonic() - start <= 10.0


async def test_no_answer_in_time_is_504_and_says_the_outcome_is_unknown(tmp_path: Path) -> None:
    settings = dataclasses.replace(FAKE_TIME, deadline=5.0, retry_base=3.0, retry_cap=3.0)
    async with running_admin(
        tmp_path, clock=FakeClock(), settings=settings, client_timeout=0.1
    ) as admin:
        admin.simulator.faults.add(Fault.timeout(action=CREATE))
        response = await admin.create()
        assert response.status_code == 504
        assert "Idempotency-Key" in response.json()["detail"]


async def test_a_reset_connection_after_retries_is_502_upstream_unreachable(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path, clock=FakeClock()) as admin:
        admin.simulator.faults.add(Fault.reset(action=CREATE))
        response = await admin.create()
        assert response.status_code == 502
        assert response.json()["type"].endswith(":upstream-unreachable")


async def test_an_unreadable_answer_is_502_upstream_error(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.truncated_json(action="DescribeVpnConnections"))
        response = await admin.create()
        assert response.status_code == 502
        assert response.json()["type"].endswith(":upstream-error")


async def test_a_financially_locked_connection_is_409_from_the_simulator_state(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.create({**ROUTE, "next_hop": LOCKED_CONNECTION}, LOCKED_CONNECTION)
        assert response.status_code == 409
        assert response.json()["code"] == "VpnConnection.FinancialLocked"


async def test_a_route_into_the_connection_own_subnet_is_409_from_the_simulator_state(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.create({**ROUTE, "route_dest": "10.1.2.0/24"})
        assert response.status_code == 409
        assert response.json()["code"] == "VpnRouteEntry.Conflict"


async def test_an_unknown_next_hop_is_422_before_any_create(tmp_path: Path) -> None:
    # Issue 12: a next hop is the connection itself or one of its tunnels, checked before
    # the cloud is asked (the cloud's own InvalidNextHop.NotFound is in PAGE_CODES).
    async with running_admin(tmp_path) as admin:
        response = await admin.create({**ROUTE, "next_hop": "vco-nosuchhop"})
        assert response.status_code == 422
        assert [p["name"] for p in response.json()["invalid_params"]] == ["next_hop"]
        assert admin.creates() == []


async def test_an_unknown_connection_is_404_before_any_create(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        response = await admin.create({**ROUTE, "next_hop": "vco-nosuch"}, "vco-nosuch")
        assert response.status_code == 404
        assert admin.creates() == []


async def test_failures_are_counted_by_reason(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("Forbidden", action=CREATE))
        await admin.create()
        labels = {"operation": "create_route", "reason": "upstream_permission_denied"}
        assert admin.metric("aliyun_vpn_admin_request_failures_total", labels) == 1
