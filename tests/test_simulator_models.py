"""Every key the simulator answers is one the official SDK's response models know: a raw
answer read into its model and written back is unchanged, for all 7 actions (the route
listing with its dual-tunnel fields, destination and BGP routes alike)."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_vpc20160428 import models  # type: ignore[import-untyped]

from exporter.simulator.scenario import Scenario, demo_scenario
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import Served

clock, served = wire.clock, wire.served


@pytest.fixture
def scenario() -> Scenario:
    """The demo fleet, with BGP routes learned by vco-hz1healthy."""
    document = demo_scenario().model_dump(mode="json")
    document["key_pairs"] = [
        {"access_key_id": "demo-access-key-id", "access_key_secret": "demo-access-key-secret"}
    ]
    document["gateways"][0]["connections"][0]["learned_routes"] = [
        {"route_dest": "172.16.1.0/24", "source": "VPN_BGP", "community": "65010:100"}
    ]
    return Scenario.model_validate(document)


def assert_known_to_the_sdk(model: Any, raw: dict[str, Any]) -> None:
    assert model().from_map(raw).to_map() == raw


HZ1 = {"RegionId": "cn-hangzhou"}
ROUTE = {
    **HZ1,
    "VpnConnectionId": "vco-hz1healthy",
    "RouteDest": "192.168.60.0/24",
    "NextHop": "vco-hz1healthy",
    "Weight": "100",
}


async def test_every_answer_of_the_seven_actions_maps_onto_the_sdks_models(
    served: Served,
) -> None:
    client = served.client
    answers = [
        (
            models.GetVpnGatewayDiagnoseResultResponseBody,
            await client.ok("GetVpnGatewayDiagnoseResult", **HZ1, VpnGatewayId="vpn-hz2quota"),
        ),
        (
            models.DiagnoseVpnGatewayResponseBody,
            await client.ok(
                "DiagnoseVpnGateway",
                **HZ1,
                VpnGatewayId="vpn-hz1healthy",
                ResourceType="IPsec",
                ResourceId="vco-hz1healthy",
            ),
        ),
        (models.DescribeVpnGatewaysResponseBody, await client.ok("DescribeVpnGateways", **HZ1)),
        (
            models.DescribeVpnConnectionsResponseBody,
            await client.ok("DescribeVpnConnections", **HZ1),
        ),
        (
            models.CreateVcoRouteEntryResponseBody,
            await client.ok("CreateVcoRouteEntry", **ROUTE, Description="branch 60"),
        ),
    ]
    for entry_type in ("custom", "bgp"):
        listed = await client.ok(
            "DescribeVcoRouteEntries",
            **HZ1,
            VpnConnectionId="vco-hz1healthy",
            RouteEntryType=entry_type,
        )
        assert listed["VcoRouteEntries"] and listed["VpnRouteCounts"]
        answers.append((models.DescribeVcoRouteEntriesResponseBody, listed))
    served.clock.advance(60)  # the connection settles after the create
    answers.append(
        (models.DeleteVcoRouteEntryResponseBody, await client.ok("DeleteVcoRouteEntry", **ROUTE))
    )
    for model, raw in answers:
        assert_known_to_the_sdk(model, raw)
