"""The simulator's CreateVcoRouteEntry, DescribeVcoRouteEntries and DeleteVcoRouteEntry,
called over HTTP by the official SDK (`alibabacloud-vpc20160428`, V3 signature, its async
path), so the acceptance of every route action is judged by an independent client.
Simulator time is a manual clock starting at the host's (the SDK signs with real time): a
connection's `updating` spell ends when the test moves it, never by sleeping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.models import Config  # type: ignore[import-untyped]
from alibabacloud_vpc20160428 import models  # type: ignore[import-untyped]
from alibabacloud_vpc20160428.client import Client  # type: ignore[import-untyped]

from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from tests.admin_harness import (
    ATTACHING_CONNECTION,
    CONNECTION,
    KEY_ID,
    KEY_SECRET,
    LOCKED_CONNECTION,
    REGION,
    SECOND_CONNECTION,
    VPNGW_CONNECTION,
    routes_scenario,
)

SETTLE = 30.0


@dataclass
class Cloud:
    simulator: Simulator
    clock: ManualClock
    client: Client

    async def create(self, connection: str = CONNECTION, **params: str) -> dict[str, Any]:
        """CreateVcoRouteEntry with the API's parameter names; the answer as JSON."""
        fields = {
            "RegionId": REGION,
            "VpnConnectionId": connection,
            "RouteDest": "192.168.10.0/24",
            "NextHop": connection,
            "Weight": "100",
            **params,
        }
        request = models.CreateVcoRouteEntryRequest().from_map(fields)
        response = await self.client.create_vco_route_entry_async(request)
        answer: dict[str, Any] = response.body.to_map()
        return answer

    async def create_error(self, connection: str = CONNECTION, **params: str) -> ClientException:
        with pytest.raises(ClientException) as caught:
            await self.create(connection, **params)
        return caught.value

    async def state(self, connection: str = CONNECTION) -> str:
        request = models.DescribeVpnConnectionsRequest(
            region_id=REGION, vpn_connection_id=connection
        )
        answer = await self.client.describe_vpn_connections_async(request)
        return str(answer.body.vpn_connections.vpn_connection[0].state)

    async def routes(self, connection: str = CONNECTION, **params: str) -> dict[str, Any]:
        fields = {"RegionId": REGION, "VpnConnectionId": connection, **params}
        request = models.DescribeVcoRouteEntriesRequest().from_map(fields)
        response = await self.client.describe_vco_route_entries_async(request)
        answer: dict[str, Any] = response.body.to_map()
        return answer

    async def delete(self, connection: str = CONNECTION, **params: str) -> dict[str, Any]:
        fields = {
            "RegionId": REGION,
            "VpnConnectionId": connection,
            "RouteDest": "192.168.10.0/24",
            "NextHop": connection,
            "Weight": "100",
            **params,
        }
        request = models.DeleteVcoRouteEntryRequest().from_map(fields)
        response = await self.client.delete_vco_route_entry_async(request)
        answer: dict[str, Any] = response.body.to_map()
        return answer

    def settle(self) -> None:
        self.clock.advance(SETTLE)


def cloud_fixture(
    learned_routes: tuple[dict[str, str], ...] = (), **route_settings: Any
) -> Callable[[], AsyncIterator[Cloud]]:
    """A fixture serving the admin tests' fleet; `learned_routes` are BGP routes of
    `CONNECTION`."""

    async def fixture() -> AsyncIterator[Cloud]:
        clock = ManualClock(time.time())
        scenario = routes_scenario(settle_seconds=SETTLE, **route_settings)
        if learned_routes:
            document = scenario.model_dump(mode="json")
            document["gateways"][0]["connections"][0]["learned_routes"] = list(learned_routes)
            # a dump masks the secret
            document["key_pairs"] = [{"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET}]
            scenario = Scenario.model_validate(document)
        simulator = Simulator(scenario, clock=clock, throttling=False)
        async with SimulatorServer(simulator) as server:
            config = Config(
                access_key_id=KEY_ID,
                access_key_secret=KEY_SECRET,
                region_id=REGION,
                endpoint=server.endpoint,
                protocol="http",
                read_timeout=10_000,
                connect_timeout=10_000,
            )
            yield Cloud(simulator, clock, Client(config))

    return fixture


cloud = pytest.fixture(cloud_fixture(ssl_client_cidrs=["172.30.0.0/16"]))
full_after_one = pytest.fixture(cloud_fixture(connection_quota=1))
region_full_after_two = pytest.fixture(cloud_fixture(region_quota=2))
learned = pytest.fixture(
    cloud_fixture(
        learned_routes=(
            {
                "route_dest": "172.16.1.0/24",
                "source": "VPN_BGP",
                "as_path": "65010 65020",
                "community": "65010:100",
            },
            {"route_dest": "172.16.2.0/24", "source": "CLOUD"},
        )
    )
)


async def test_created_route_is_listed_by_describe_vco_route_entries(cloud: Cloud) -> None:
    answer = await cloud.create(Description="to the branch")
    assert answer["State"] == "published"
    assert answer["RequestId"]
    listed = (await cloud.routes())["VcoRouteEntries"]
    assert [(r["RouteDest"], r["NextHop"], r["Weight"]) for r in listed] == [
        ("192.168.10.0/24", CONNECTION, 100)
    ]
    assert listed[0]["RouteEntryType"] == "custom"


async def test_connection_is_updating_after_a_create_and_attached_once_it_settles(
    cloud: Cloud,
) -> None:
    assert await cloud.state() == "attached"
    await cloud.create()
    assert await cloud.state() == "updating"
    cloud.clock.advance(SETTLE - 1)
    assert await cloud.state() == "updating"
    cloud.clock.advance(1)
    assert await cloud.state() == "attached"


async def test_listed_destination_route_has_only_documented_values(cloud: Cloud) -> None:
    await cloud.create()
    for _ in range(2):  # while the connection updates, and once it settled
        answer = await cloud.routes()
        (route,) = answer["VcoRouteEntries"]
        assert (route["State"], route["RouteEntryType"]) == ("published", "custom")
        assert "Source" not in route, "Source is documented for BGP routes only"
        # every simulated connection is dual-tunnel, both tunnels' phase 2 up
        assert route["NextHopTunnelIdList"] == ["tun-cen11", "tun-cen12"]
        assert answer["VpnRouteCounts"] == [{"RouteCount": 1, "RouteEntryType": "custom"}]
        cloud.settle()


async def test_create_while_the_connection_is_updating_is_task_conflict(cloud: Cloud) -> None:
    await cloud.create()
    error = await cloud.create_error(RouteDest="192.168.11.0/24")
    assert (error.status_code, error.code) == (400, "TaskConflict")


async def test_same_client_token_and_parameters_return_the_first_answer_and_one_route(
    cloud: Cloud,
) -> None:
    first = await cloud.create(ClientToken="token-1")
    again = await cloud.create(ClientToken="token-1")  # while updating: no TaskConflict
    assert again["CreateTime"] == first["CreateTime"]
    assert again["RequestId"] != first["RequestId"]
    assert len((await cloud.routes())["VcoRouteEntries"]) == 1


async def test_same_client_token_with_other_parameters_is_idempotent_parameter_mismatch(
    cloud: Cloud,
) -> None:
    await cloud.create(ClientToken="token-1")
    cloud.settle()
    error = await cloud.create_error(ClientToken="token-1", RouteDest="192.168.11.0/24")
    assert (error.status_code, error.code) == (400, "IdempotentParameterMismatch")


async def test_dry_run_answers_dry_run_operation_and_creates_nothing(cloud: Cloud) -> None:
    error = await cloud.create_error(DryRun="true")
    assert (error.status_code, error.code) == (400, "DryRunOperation")
    assert (await cloud.routes())["TotalCount"] == 0
    assert await cloud.state() == "attached"


async def test_dry_run_still_reports_what_a_create_would_fail_on(cloud: Cloud) -> None:
    error = await cloud.create_error(DryRun="true", RouteDest="0.0.0.0/0")
    assert error.code == "IllegalParam.RouteDest"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"RouteDest": "not-a-cidr"}, "IllegalParam.RouteDest"),
        ({"RouteDest": "0.0.0.0/0"}, "IllegalParam.RouteDest"),
        ({"RouteDest": "2001:db8::/32"}, "IllegalParam.RouteDest"),
        ({"RouteDest": "10.0.0.1/24"}, "OperationFailed.InvalidCidrBlock"),
        ({"RouteDest": "224.0.0.0/8"}, "OperationFailed.InvalidCidrBlock"),
        ({"NextHop": "vco-nosuch"}, "InvalidNextHop.NotFound"),
        ({"RouteDest": "10.1.2.0/24"}, "VpnRouteEntry.Conflict"),
        ({"Weight": "50"}, "InvalidParameter"),
        ({"OverlayMode": "Gre"}, "InvalidParameter"),
        ({"Description": "https://example.com"}, "InvalidParameter"),
        ({"Description": "line\nbreak"}, "InvalidParameter"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(value.values()),
)
async def test_create_refuses_what_the_api_page_refuses(
    cloud: Cloud, params: dict[str, str], code: str
) -> None:
    error = await cloud.create_error(**params)
    assert (error.status_code, error.code) == (400, code)
    assert (await cloud.routes())["TotalCount"] == 0


async def test_a_route_in_the_shared_address_space_is_accepted_as_the_page_only_warns(
    cloud: Cloud,
) -> None:
    # Why the exporter must refuse 100.64.0.0/10 itself: the cloud may well take it.
    await cloud.create(RouteDest="100.64.1.0/24")
    assert (await cloud.routes())["TotalCount"] == 1


async def test_unknown_connection_is_invalid_vpn_connection_instance_id_not_found(
    cloud: Cloud,
) -> None:
    error = await cloud.create_error("vco-nosuch")
    assert (error.status_code, error.code) == (404, "InvalidVpnConnectionInstanceId.NotFound")


async def test_financially_locked_connection_is_refused(cloud: Cloud) -> None:
    error = await cloud.create_error(LOCKED_CONNECTION)
    assert (error.status_code, error.code) == (400, "VpnConnection.FinancialLocked")


async def test_connection_in_another_transitional_state_is_configuring(cloud: Cloud) -> None:
    error = await cloud.create_error(ATTACHING_CONNECTION)
    assert (error.status_code, error.code) == (400, "VpnConnection.Configuring")


async def test_connection_not_attached_to_a_transit_router_is_refused(cloud: Cloud) -> None:
    error = await cloud.create_error(VPNGW_CONNECTION)
    # ASSUMPTION of the simulator: the pages document no code for this refusal.
    assert error.code == "InvalidParameter"
    assert "transit router" in error.message


async def test_the_same_destination_and_next_hop_again_is_already_exists(cloud: Cloud) -> None:
    await cloud.create()
    cloud.settle()
    error = await cloud.create_error(Weight="0")
    assert (error.status_code, error.code) == (400, "VpnRouteEntry.AlreadyExists")


async def test_a_second_next_hop_with_the_same_weight_is_backup_route(cloud: Cloud) -> None:
    await cloud.create()
    cloud.settle()
    error = await cloud.create_error(NextHop=SECOND_CONNECTION)
    assert (error.status_code, error.code) == (400, "VpnRouteEntry.BackupRoute")


async def test_a_standby_next_hop_with_weight_zero_is_accepted(cloud: Cloud) -> None:
    await cloud.create()
    cloud.settle()
    await cloud.create(NextHop=SECOND_CONNECTION, Weight="0")
    assert (await cloud.routes())["TotalCount"] == 2


async def test_a_route_overlapping_an_ssl_client_pool_is_conflict_ssl(cloud: Cloud) -> None:
    error = await cloud.create_error(RouteDest="172.30.8.0/24")
    assert (error.status_code, error.code) == (400, "VpnRouteEntry.ConflictSSL")


async def test_a_full_connection_is_resource_quota_full(full_after_one: Cloud) -> None:
    await full_after_one.create()
    full_after_one.settle()
    error = await full_after_one.create_error(RouteDest="192.168.11.0/24")
    assert (error.status_code, error.code) == (400, "Resource.QuotaFull")


async def test_a_full_region_is_quota_exceeded_vpn_route_entry(
    region_full_after_two: Cloud,
) -> None:
    cloud = region_full_after_two
    await cloud.create()
    await cloud.create(SECOND_CONNECTION)
    cloud.settle()
    error = await cloud.create_error(RouteDest="192.168.11.0/24")
    assert (error.status_code, error.code) == (400, "QuotaExceeded.VpnRouteEntry")


@pytest.mark.parametrize("code", ["Forbidden", "Forbbiden.SubUser"])
async def test_permission_codes_are_injected_as_faults_with_status_403(
    cloud: Cloud, code: str
) -> None:
    cloud.simulator.faults.add(Fault.error(code, action="CreateVcoRouteEntry"))
    error = await cloud.create_error()
    assert (error.status_code, error.code) == (403, code)


async def test_describe_vco_route_entries_pages_through_the_routes(cloud: Cloud) -> None:
    for third in range(12):
        await cloud.create(RouteDest=f"192.168.{third}.0/24")
        cloud.settle()
    first = await cloud.routes(PageSize="5")
    last = await cloud.routes(PageSize="5", PageNumber="3")
    assert (first["TotalCount"], len(first["VcoRouteEntries"])) == (12, 5)
    assert [r["RouteDest"] for r in last["VcoRouteEntries"]] == [
        "192.168.10.0/24",
        "192.168.11.0/24",
    ]


async def test_describe_vco_route_entries_lists_destination_routes_unless_asked_for_bgp(
    learned: Cloud,
) -> None:
    await learned.create()
    assert [r["RouteDest"] for r in (await learned.routes())["VcoRouteEntries"]] == [
        "192.168.10.0/24"
    ]
    assert (await learned.routes(RouteEntryType="custom"))["TotalCount"] == 1
    bgp = await learned.routes(RouteEntryType="bgp")
    assert [(r["RouteDest"], r["State"], r["Source"]) for r in bgp["VcoRouteEntries"]] == [
        ("172.16.1.0/24", "Active", "VPN_BGP"),
        ("172.16.2.0/24", "Active", "CLOUD"),
    ]
    assert (bgp["VcoRouteEntries"][0]["AsPath"], bgp["VcoRouteEntries"][0]["Community"]) == (
        "65010 65020",
        "65010:100",
    )
    assert bgp["VpnRouteCounts"] == [
        {"RouteCount": 1, "RouteEntryType": "custom"},
        {"RouteCount": 1, "RouteEntryType": "bgp", "Source": "CLOUD"},
        {"RouteCount": 1, "RouteEntryType": "bgp", "Source": "VPN_BGP"},
    ]


async def test_delete_removes_the_route_and_takes_the_connection_through_updating(
    cloud: Cloud,
) -> None:
    await cloud.create()
    cloud.settle()
    answer = await cloud.delete()
    assert answer["RequestId"]
    assert (await cloud.routes())["TotalCount"] == 0
    assert await cloud.state() == "updating"


async def test_deleting_a_route_that_does_not_exist_is_refused(cloud: Cloud) -> None:
    with pytest.raises(ClientException) as caught:
        await cloud.delete()
    # ASSUMPTION of the simulator (no documented code); only a 4xx refusal is asserted
    # beyond it, as the exporter never depends on its text.
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidParameter")
