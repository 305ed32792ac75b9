"""The simulator's actions over real HTTP: diagnoses, gateways, connections, their errors."""

from __future__ import annotations

import json
import re

import pytest

from exporter.simulator.generator import generated_scenario
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import Served

# the shared harness: a simulator on a manual clock, served on loopback, a signing client
clock, scenario, served = wire.clock, wire.scenario, wire.served

API_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
HZ = {"RegionId": "cn-hangzhou"}


# GetVpnGatewayDiagnoseResult -----------------------------------------------------------


async def test_result_has_the_shape_of_the_api_pages_sample(served: Served) -> None:
    body = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz1healthy"
    )
    assert set(body) == {
        "BeginTime",
        "DiagnoseId",
        "DiagnoseResult",
        "FinishTime",
        "FinishedCount",
        "RequestId",
        "ResourceInstanceId",
        "ResourceType",
        "TotalCount",
        "VpnGatewayId",
    }
    assert API_TIME.match(body["BeginTime"]) and API_TIME.match(body["FinishTime"])
    assert re.match(r"^vpndgn-[a-z0-9]{21}$", body["DiagnoseId"])
    for item in body["DiagnoseResult"]:
        assert set(item) == {"DiagnoseName", "DiagnoseResultDescription", "DiagnoseResultLevel"}
        assert isinstance(item["DiagnoseResultDescription"], str)
        assert isinstance(json.loads(item["DiagnoseResultDescription"]), dict)


async def test_result_lists_all_seven_items_in_api_order(served: Served) -> None:
    body = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz1healthy"
    )
    assert [item["DiagnoseName"] for item in body["DiagnoseResult"]] == [
        "RouteEntryConflict",
        "VpnRouteQuota",
        "VpnIPsecQuota",
        "VpnPbrRouteQuota",
        "VcoConfigConsistency",
        "VcoUserInternetIpConnectivity",
        "VcoPrivateConnectivity",
    ]


async def test_result_without_gateway_or_diagnose_id_is_missing_param_diagnose_info(
    served: Served,
) -> None:
    assert await served.client.error("GetVpnGatewayDiagnoseResult", **HZ) == (
        400,
        "MissingParam.DiagnoseInfo",
    )


async def test_result_without_region_is_missing_region_id(served: Served) -> None:
    response = await served.client.call(
        "GetVpnGatewayDiagnoseResult", VpnGatewayId="vpn-hz1healthy"
    )
    assert (response.status_code, response.json()["Code"]) == (400, "MissingRegionId")
    assert response.json()["Message"] == "RegionId is mandatory for this action."


async def test_result_of_an_unknown_diagnose_id_is_invalid_diagnose_id_not_found(
    served: Served,
) -> None:
    response = await served.client.call(
        "GetVpnGatewayDiagnoseResult", **HZ, DiagnoseId="vpndgn-doesnotexist"
    )
    assert (response.status_code, response.json()["Code"]) == (404, "InvalidDiagnoseId.NotFound")
    assert "vpndgn-doesnotexist" in response.json()["Message"]


async def test_result_of_a_gateway_never_diagnosed_is_invalid_vpn_gateway_id_not_found(
    served: Served,
) -> None:
    assert await served.client.error(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz4nodiag"
    ) == (404, "InvalidVpnGatewayId.NotFound")


async def test_result_of_an_unknown_gateway_is_invalid_vpn_gateway_instance_id_not_found(
    served: Served,
) -> None:
    assert await served.client.error(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-nosuchgateway"
    ) == (404, "InvalidVpnGatewayInstanceId.NotFound")


async def test_result_of_a_gateway_asked_in_another_region_is_not_found(served: Served) -> None:
    assert await served.client.error(
        "GetVpnGatewayDiagnoseResult", RegionId="ap-southeast-1", VpnGatewayId="vpn-hz1healthy"
    ) == (404, "InvalidVpnGatewayInstanceId.NotFound")


async def test_latest_result_is_readable_again_by_its_diagnose_id(served: Served) -> None:
    latest = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz2quota"
    )
    again = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, DiagnoseId=latest["DiagnoseId"]
    )
    assert again["DiagnoseResult"] == latest["DiagnoseResult"]


async def test_diagnose_id_with_another_gateway_id_is_invalid_diagnose_id_not_found(
    served: Served,
) -> None:
    latest = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz2quota"
    )
    assert await served.client.error(
        "GetVpnGatewayDiagnoseResult",
        **HZ,
        DiagnoseId=latest["DiagnoseId"],
        VpnGatewayId="vpn-hz1healthy",
    ) == (404, "InvalidDiagnoseId.NotFound")


# DiagnoseVpnGateway --------------------------------------------------------------------


def start_params(gateway: str = "hz4nodiag", **extra: str) -> dict[str, str]:
    return {
        **HZ,
        "VpnGatewayId": f"vpn-{gateway}",
        "ResourceType": "IPsec",
        "ResourceId": f"vco-{gateway}",
        **extra,
    }


async def test_started_diagnosis_finishes_its_items_one_by_one(served: Served) -> None:
    started = await served.client.ok("DiagnoseVpnGateway", **start_params())
    counts = []
    for _ in range(12):
        body = await served.client.ok(
            "GetVpnGatewayDiagnoseResult", **HZ, DiagnoseId=started["DiagnoseId"]
        )
        assert len(body["DiagnoseResult"]) == body["FinishedCount"]
        assert ("FinishTime" in body) == (body["FinishedCount"] == 7)
        counts.append(body["FinishedCount"])
        served.clock.advance(1)
    assert counts == sorted(counts)
    assert counts[0] == 0 and counts[-1] == 7 and len(set(counts)) == 8


async def test_started_diagnosis_becomes_the_gateways_latest(served: Served) -> None:
    started = await served.client.ok("DiagnoseVpnGateway", **start_params("hz1healthy"))
    latest = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz1healthy"
    )
    assert latest["DiagnoseId"] == started["DiagnoseId"]


async def test_gateway_without_diagnosis_has_one_once_started(served: Served) -> None:
    started = await served.client.ok("DiagnoseVpnGateway", **start_params())
    served.clock.advance(60)
    latest = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, VpnGatewayId="vpn-hz4nodiag"
    )
    assert (latest["DiagnoseId"], latest["FinishedCount"]) == (started["DiagnoseId"], 7)


async def test_ipsec_extend_info_sets_the_private_probes_addresses(served: Served) -> None:
    info = json.dumps({"PrivateSourceIp": "10.9.9.9", "PrivateDestinationIp": "192.168.9.9"})
    started = await served.client.ok("DiagnoseVpnGateway", **start_params(IPsecExtendInfo=info))
    served.clock.advance(60)
    body = await served.client.ok(
        "GetVpnGatewayDiagnoseResult", **HZ, DiagnoseId=started["DiagnoseId"]
    )
    private = json.loads(body["DiagnoseResult"][-1]["DiagnoseResultDescription"])
    assert (private["srcIp"], private["targetIp"]) == ("10.9.9.9", "192.168.9.9")


@pytest.mark.parametrize(
    "info",
    [
        "not json",
        '{"PrivateSourceIp": "10.0.0.1"}',
        '{"PrivateSourceIp": "x", "PrivateDestinationIp": "y"}',
    ],
)
async def test_malformed_ipsec_extend_info_is_invalid_parameter(served: Served, info: str) -> None:
    assert await served.client.error(
        "DiagnoseVpnGateway", **start_params(IPsecExtendInfo=info)
    ) == (400, "InvalidParameter")


async def test_diagnosing_a_connection_of_another_gateway_is_not_found(served: Served) -> None:
    params = start_params()
    params["ResourceId"] = "vco-hz1healthy"
    assert await served.client.error("DiagnoseVpnGateway", **params) == (
        404,
        "InvalidVpnConnectionInstanceId.NotFound",
    )


async def test_diagnosing_other_than_ipsec_is_invalid_parameter(served: Served) -> None:
    params = start_params(ResourceType="SSL")
    assert await served.client.error("DiagnoseVpnGateway", **params) == (400, "InvalidParameter")


async def test_diagnosing_without_resource_id_is_missing_resource_id(served: Served) -> None:
    params = start_params()
    del params["ResourceId"]
    assert await served.client.error("DiagnoseVpnGateway", **params) == (400, "MissingResourceId")


async def test_repeated_client_token_returns_the_same_diagnosis(served: Served) -> None:
    first = await served.client.ok("DiagnoseVpnGateway", **start_params(ClientToken="t-1"))
    again = await served.client.ok("DiagnoseVpnGateway", **start_params(ClientToken="t-1"))
    assert again["DiagnoseId"] == first["DiagnoseId"]


async def test_client_token_reused_with_other_parameters_is_idempotent_parameter_mismatch(
    served: Served,
) -> None:
    await served.client.ok("DiagnoseVpnGateway", **start_params(ClientToken="t-1"))
    assert await served.client.error(
        "DiagnoseVpnGateway", **start_params("hz1healthy", ClientToken="t-1")
    ) == (400, "IdempotentParameterMismatch")


# DescribeVpnGateways -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", [generated_scenario(25)], ids=["25-gateways"])
async def test_gateways_come_ten_per_page_by_default(served: Served) -> None:
    body = await served.client.ok("DescribeVpnGateways", **HZ)
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (25, 1, 10)
    assert len(body["VpnGateways"]["VpnGateway"]) == 10


@pytest.mark.parametrize("scenario", [generated_scenario(25)], ids=["25-gateways"])
async def test_pages_list_every_gateway_exactly_once(served: Served) -> None:
    seen: list[str] = []
    for number in range(1, 6):
        body = await served.client.ok(
            "DescribeVpnGateways", **HZ, PageSize="7", PageNumber=str(number)
        )
        seen += [g["VpnGatewayId"] for g in body["VpnGateways"]["VpnGateway"]]
    assert len(seen) == len(set(seen)) == 25


@pytest.mark.parametrize("size", ["0", "51", "ten"])
async def test_page_size_outside_one_to_fifty_is_invalid_parameter(
    served: Served, size: str
) -> None:
    assert await served.client.error("DescribeVpnGateways", **HZ, PageSize=size) == (
        400,
        "InvalidParameter",
    )


async def test_page_size_fifty_is_accepted(served: Served) -> None:
    body = await served.client.ok("DescribeVpnGateways", **HZ, PageSize="50")
    assert body["PageSize"] == 50


async def test_gateway_has_the_fields_the_exporter_reads(served: Served) -> None:
    body = await served.client.ok("DescribeVpnGateways", **HZ, VpnGatewayId="vpn-hz2quota")
    (gateway,) = body["VpnGateways"]["VpnGateway"]
    assert gateway["VpnGatewayId"] == "vpn-hz2quota"
    assert (gateway["Name"], gateway["VpcId"], gateway["Spec"], gateway["Status"]) == (
        "hz2-quota",
        "vpc-hz2demo",
        "20M",
        "active",
    )
    assert gateway["InternetIp"] == "198.51.100.12"
    assert isinstance(gateway["CreateTime"], int)
    assert gateway["Tags"] == {
        "Tag": [{"Key": "env", "Value": "demo"}, {"Key": "site", "Value": "hz2"}]
    }


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"VpnGatewayId": "vpn-hz3unreachable"}, {"vpn-hz3unreachable"}),
        ({"VpcId": "vpc-hz1demo"}, {"vpn-hz1healthy"}),
        (
            {"Status": "active", "BusinessStatus": "Normal"},
            {"vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable", "vpn-hz4nodiag"},
        ),
        ({"Status": "updating"}, set()),
        (
            {"ResourceGroupId": "rg-default"},
            {"vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable", "vpn-hz4nodiag"},
        ),
        ({"Tag.1.Key": "site", "Tag.1.Value": "hz2"}, {"vpn-hz2quota"}),
        (
            {"Tag.1.Key": "site"},
            {"vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable", "vpn-hz4nodiag"},
        ),
        (
            {"Tag.1.Key": "env", "Tag.1.Value": "demo", "Tag.2.Key": "site", "Tag.2.Value": "hz4"},
            {"vpn-hz4nodiag"},
        ),
        ({"Tag.1.Key": "env", "Tag.1.Value": "prod"}, set()),
        ({"VpcId": "vpc-hz1demo", "Tag.1.Key": "site", "Tag.1.Value": "hz2"}, set()),
    ],
    ids=[
        "gateway-id",
        "vpc",
        "status-and-business-status",
        "no-such-status",
        "resource-group",
        "tag-value",
        "tag-key-only",
        "two-tags",
        "tag-without-match",
        "vpc-and-tag-disagree",
    ],
)
async def test_gateway_filters_select_the_matching_gateways(
    served: Served, filters: dict[str, str], expected: set[str]
) -> None:
    body = await served.client.ok("DescribeVpnGateways", **HZ, PageSize="50", **filters)
    assert {g["VpnGatewayId"] for g in body["VpnGateways"]["VpnGateway"]} == expected
    assert body["TotalCount"] == len(expected)


async def test_gateways_of_a_region_without_gateways_are_an_empty_page(served: Served) -> None:
    body = await served.client.ok("DescribeVpnGateways", RegionId="eu-central-1")
    assert (body["TotalCount"], body["VpnGateways"]) == (0, {"VpnGateway": []})


# DescribeVpnConnections ----------------------------------------------------------------


async def test_connection_has_the_fields_the_admin_api_reads(served: Served) -> None:
    body = await served.client.ok(
        "DescribeVpnConnections", RegionId="ap-southeast-1", VpnConnectionId="vco-sg2lossy"
    )
    (connection,) = body["VpnConnections"]["VpnConnection"]
    assert connection["VpnConnectionId"] == "vco-sg2lossy"
    assert connection["Name"] == "sg2-lossy-ipsec"
    assert (connection["State"], connection["AttachType"], connection["TransitRouterId"]) == (
        "attached",
        "CEN",
        "tr-sgdemo",
    )
    assert connection["Status"] == "ipsec_sa_established"
    assert connection["VpnBgpConfig"]["Status"] == "success"
    assert connection["VcoHealthCheck"]["Status"] == "success"
    tunnels = connection["TunnelOptionsSpecification"]["TunnelOptions"]
    assert [(t["TunnelIndex"], t["State"], t["Status"]) for t in tunnels] == [
        (1, "active", "ipsec_sa_established"),
        (2, "active", "ipsec_sa_established"),
    ]


async def test_connections_of_a_gateway_are_listed_by_gateway_id(served: Served) -> None:
    body = await served.client.ok("DescribeVpnConnections", **HZ, VpnGatewayId="vpn-hz2quota")
    assert [c["VpnConnectionId"] for c in body["VpnConnections"]["VpnConnection"]] == [
        "vco-hz2quota"
    ]


async def test_connections_of_a_region_are_paged(served: Served) -> None:
    body = await served.client.ok("DescribeVpnConnections", **HZ, PageSize="3", PageNumber="2")
    assert body["TotalCount"] == 4
    assert [c["VpnConnectionId"] for c in body["VpnConnections"]["VpnConnection"]] == [
        "vco-hz4nodiag"
    ]


async def test_connection_asked_in_another_region_is_not_listed(served: Served) -> None:
    body = await served.client.ok("DescribeVpnConnections", **HZ, VpnConnectionId="vco-sg2lossy")
    assert body["TotalCount"] == 0


async def test_connection_state_changes_show_in_describe_vpn_connections(served: Served) -> None:
    connection = served.simulator.fleet.connection("vco-hz1healthy")
    assert connection is not None
    connection.state = "updating"
    body = await served.client.ok("DescribeVpnConnections", **HZ, VpnConnectionId="vco-hz1healthy")
    assert body["VpnConnections"]["VpnConnection"][0]["State"] == "updating"


async def test_connections_of_a_region_are_listed_without_filters(served: Served) -> None:
    body = await served.client.ok("DescribeVpnConnections", RegionId="ap-southeast-1")
    assert {c["VpnConnectionId"] for c in body["VpnConnections"]["VpnConnection"]} == {
        "vco-sg1inconsistent",
        "vco-sg2lossy",
    }
