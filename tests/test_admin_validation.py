"""Requests the admin API must refuse before any cloud call (DESIGN's list, one test each),
over real HTTP to a running admin listener in front of the simulator. "Before any cloud
call" is checked on the simulator's journal: not a single request reached it."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admin_harness import (
    CONNECTION,
    FOREIGN_CONNECTION,
    OTHER_REGION,
    REGION,
    ROUTE,
    SECOND_CONNECTION,
    VPNGW_CONNECTION,
    AdminHarness,
    routes_scenario,
    running_admin,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
# One admin listener per module: starting one per test would cost more than the tests.


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def open_admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminHarness]:
    scenario = routes_scenario(connection_quota=100_000, region_quota=100_000)
    async with running_admin(tmp_path_factory.mktemp("open"), scenario=scenario) as harness:
        yield harness


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def restricted_admin(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AdminHarness]:
    async with running_admin(
        tmp_path_factory.mktemp("restricted"),
        allowed_connections=(CONNECTION, VPNGW_CONNECTION),
        allowed_destinations=("192.168.0.0/16", "172.16.0.0/12"),
    ) as harness:
        yield harness


@pytest.fixture
def admin(open_admin: AdminHarness) -> AdminHarness:
    """No allow-lists; the simulator's journal starts empty."""
    open_admin.simulator.journal.clear()
    return open_admin


@pytest.fixture
def restricted(restricted_admin: AdminHarness) -> AdminHarness:
    """Allow-lists for connections and destinations; the journal starts empty."""
    restricted_admin.simulator.journal.clear()
    return restricted_admin


async def refused(
    admin: AdminHarness,
    status: int,
    field: str | None,
    connection_id: str = CONNECTION,
    *,
    drop: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """POST the route with `changes` (and without the field `drop`); assert the status,
    the field named, and that the cloud was never asked anything. Returns the problem."""
    body = {key: value for key, value in {**ROUTE, **changes}.items() if key != drop}
    response = await admin.create(body, connection_id)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    if field is not None:
        assert field in [param["name"] for param in problem["invalid_params"]]
    assert admin.cloud_calls() == []
    return problem


async def test_default_route_0_0_0_0_0_is_refused(admin: AdminHarness) -> None:
    problem = await refused(admin, 422, "route_dest", route_dest="0.0.0.0/0")
    assert "default route" in problem["invalid_params"][0]["reason"]


async def test_the_shared_address_space_100_64_0_0_10_itself_is_refused(
    admin: AdminHarness,
) -> None:
    await refused(admin, 422, "route_dest", route_dest="100.64.0.0/10")


async def test_a_block_inside_100_64_0_0_10_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "route_dest", route_dest="100.64.1.0/24")


async def test_a_block_containing_100_64_0_0_10_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "route_dest", route_dest="100.0.0.0/8")


async def test_a_cidr_with_host_bits_set_is_refused(admin: AdminHarness) -> None:
    problem = await refused(admin, 422, "route_dest", route_dest="10.0.0.1/24")
    assert "host bits are set: the network is 10.0.0.0/24" in problem["detail"] + str(
        problem["invalid_params"]
    )


@pytest.mark.parametrize(
    "text", ["not-a-cidr", "192.168.10.0", "192.168.10.0/33", "192.168.010.0/24", " 10.0.0.0/8"]
)
async def test_something_that_is_not_a_cidr_is_refused(admin: AdminHarness, text: str) -> None:
    await refused(admin, 422, "route_dest", route_dest=text)


async def test_an_ipv6_destination_is_refused(admin: AdminHarness) -> None:
    problem = await refused(admin, 422, "route_dest", route_dest="2001:db8::/32")
    assert "IPv6 is not supported" in problem["invalid_params"][0]["reason"]


@pytest.mark.parametrize("text", ["127.0.0.0/8", "224.0.0.0/24", "169.254.0.0/16"])
async def test_unroutable_space_is_refused(admin: AdminHarness, text: str) -> None:
    await refused(admin, 422, "route_dest", route_dest=text)


async def test_weight_50_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "weight", weight=50)


@pytest.mark.parametrize("weight", ["100", True, None])
async def test_a_weight_that_is_not_a_json_integer_is_refused(
    admin: AdminHarness, weight: object
) -> None:
    await refused(admin, 422, "weight", weight=weight)


async def test_an_empty_description_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "description", description="")


async def test_a_blank_description_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "description", description="   ")


async def test_an_over_long_description_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "description", description="x" * 101)


@pytest.mark.parametrize(
    "text", ["line\nbreak", "nul\x00", "bell\x07", "bidi \u202e override", "sep\u2028arator"]
)
async def test_a_description_with_control_or_invisible_characters_is_refused(
    admin: AdminHarness, text: str
) -> None:
    await refused(admin, 422, "description", description=text)


async def test_a_description_that_is_a_link_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "description", description="https://evil.example/")


@pytest.mark.parametrize("connection_id", ["vco-UPPER", "vpn-abc", "vco-", "vco-a_b", "x" * 80])
async def test_a_malformed_connection_id_is_refused(
    admin: AdminHarness, connection_id: str
) -> None:
    await refused(admin, 422, "vpn_connection_id", connection_id)


@pytest.mark.parametrize("next_hop", ["vco-UPPER", "10.0.0.1", "", "vco-x y"])
async def test_a_malformed_next_hop_id_is_refused(admin: AdminHarness, next_hop: str) -> None:
    await refused(admin, 422, "next_hop", next_hop=next_hop)


async def test_a_region_the_exporter_does_not_cover_is_refused(admin: AdminHarness) -> None:
    problem = await refused(admin, 422, "region_id", FOREIGN_CONNECTION, region_id=OTHER_REGION)
    assert "not configured (configured: cn-hangzhou)" in problem["detail"]


async def test_a_malformed_region_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "region_id", region_id="Hangzhou!")


@pytest.mark.parametrize("missing", ["region_id", "route_dest", "next_hop", "weight"])
async def test_a_missing_required_field_is_refused(admin: AdminHarness, missing: str) -> None:
    await refused(admin, 422, missing, drop=missing)


async def test_an_unknown_field_is_refused_not_ignored(admin: AdminHarness) -> None:
    await refused(admin, 422, "wieght", wieght=0)


async def test_an_overlay_mode_other_than_ipsec_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "overlay_mode", overlay_mode="Gre")


async def test_dry_run_that_is_not_a_json_boolean_is_refused(admin: AdminHarness) -> None:
    await refused(admin, 422, "dry_run", dry_run="yes")


async def test_a_body_that_is_not_json_is_refused_as_malformed(admin: AdminHarness) -> None:
    response = await admin.http.post(
        f"/api/v1/vpn-connections/{CONNECTION}/routes",
        content=b'{"region_id": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith(":malformed-request")
    assert admin.cloud_calls() == []


async def test_a_json_array_body_is_refused(admin: AdminHarness) -> None:
    response = await admin.http.post(f"/api/v1/vpn-connections/{CONNECTION}/routes", json=[ROUTE])
    assert response.status_code == 422
    assert admin.cloud_calls() == []


async def test_a_malformed_idempotency_key_is_refused(admin: AdminHarness) -> None:
    response = await admin.create(headers={"Idempotency-Key": "has spaces in it"})
    assert response.status_code == 422
    assert "Idempotency-Key" in [p["name"] for p in response.json()["invalid_params"]]
    assert admin.cloud_calls() == []


async def test_a_body_over_the_size_cap_is_refused(admin: AdminHarness) -> None:
    response = await admin.create({**ROUTE, "description": "x" * 20_000})
    assert response.status_code == 413
    assert admin.cloud_calls() == []


async def test_a_connection_outside_allowed_connections_is_forbidden(
    restricted: AdminHarness,
) -> None:
    problem = await refused(restricted, 403, None, SECOND_CONNECTION, next_hop=SECOND_CONNECTION)
    assert "not in admin.allowed_connections" in problem["detail"]


async def test_a_destination_outside_allowed_destinations_is_forbidden(
    restricted: AdminHarness,
) -> None:
    problem = await refused(restricted, 403, None, route_dest="10.200.0.0/16")
    assert "not inside admin.allowed_destinations" in problem["detail"]


async def test_a_destination_containing_an_allowed_one_is_forbidden(
    restricted: AdminHarness,
) -> None:
    await refused(restricted, 403, None, route_dest="172.0.0.0/8")


async def test_listing_a_connection_outside_allowed_connections_is_forbidden(
    restricted: AdminHarness,
) -> None:
    response = await restricted.http.get(
        f"/api/v1/vpn-connections/{SECOND_CONNECTION}/routes",
        params={"region_id": REGION},
    )
    assert response.status_code == 403
    assert restricted.cloud_calls() == []


async def test_a_connection_not_attached_to_a_transit_router_is_refused_without_a_create(
    restricted: AdminHarness,
) -> None:
    response = await restricted.create({**ROUTE, "next_hop": VPNGW_CONNECTION}, VPNGW_CONNECTION)
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith(":not-attached-to-transit-router")
    assert "attached as VPNGW" in problem["detail"]
    assert [call.action for call in restricted.cloud_calls()] == ["DescribeVpnConnections"]


async def test_an_allowed_route_in_allowed_space_passes_to_the_cloud(
    restricted: AdminHarness,
) -> None:
    response = await restricted.create()
    assert response.status_code == 202, response.text
    assert len(restricted.creates()) == 1


async def test_refusals_are_counted_by_operation_and_reason(admin: AdminHarness) -> None:
    failures = (
        "aliyun_vpn_admin_request_failures_total",
        {"operation": "create_route", "reason": "invalid_request"},
    )
    requests = ("aliyun_vpn_admin_requests_total", {"operation": "create_route"})
    before = admin.metric(*failures), admin.metric(*requests)
    await admin.create({**ROUTE, "weight": 50})
    assert (admin.metric(*failures), admin.metric(*requests)) == (before[0] + 1, before[1] + 1)


async def test_a_refused_request_writes_one_audit_line(
    admin: AdminHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="exporter.admin.audit"):
        await admin.create({**ROUTE, "route_dest": "0.0.0.0/0"})
    lines = [r for r in caplog.records if r.name == "exporter.admin.audit"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert (fields["outcome"], fields["status"], fields["user"]) == (
        "invalid_request",
        422,
        "alice",
    )
    assert fields["vpn_connection_id"] == CONNECTION


async def test_an_unknown_path_is_a_problem_document(admin: AdminHarness) -> None:
    response = await admin.http.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unsupported_method_is_405_with_allow(admin: AdminHarness) -> None:
    response = await admin.http.delete(f"/api/v1/vpn-connections/{CONNECTION}/routes")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


SHARED = ipaddress.IPv4Network("100.64.0.0/10")


def _network(address: int, prefix: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((address, prefix), strict=False)


networks = st.one_of(
    st.builds(_network, st.integers(0, 2**32 - 1), st.integers(0, 32)),
    # around the shared address space, where a mistake would cut a connection
    st.builds(
        _network,
        st.integers(int(SHARED.network_address) - 2**23, int(SHARED.broadcast_address) + 2**23),
        st.integers(4, 32),
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(network=networks)
async def test_no_destination_touching_the_shared_space_ever_reaches_the_cloud(
    admin: AdminHarness, network: ipaddress.IPv4Network
) -> None:
    before = len(admin.creates())
    response = await admin.create({**ROUTE, "route_dest": str(network)})
    if network.prefixlen == 0 or network.overlaps(SHARED):
        assert response.status_code == 422
        assert len(admin.creates()) == before
    elif response.status_code == 202:
        assert len(admin.creates()) == before + 1
    else:  # a route seen before, or unroutable space
        assert response.status_code in (409, 422), response.text
