"""Fidelity: the official SDK, unchanged, against the simulator over real HTTP.

Every behaviour runs with the SDK's default V3 signature and with `signature_algorithm="v2"`
(V1), through its synchronous and its asynchronous (`*_async`) paths; field values are
checked against the scenario. Behaviours beyond the three actions DESIGN names run in two
of the four combinations, covering both signatures and both paths.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_tea_openapi.exceptions import (  # type: ignore[import-untyped]
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.models import Config  # type: ignore[import-untyped]
from alibabacloud_vpc20160428 import models  # type: ignore[import-untyped]
from alibabacloud_vpc20160428.client import Client  # type: ignore[import-untyped]

from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, demo_scenario
from exporter.simulator.server import SimulatorServer, run_simulator_in_thread
from exporter.simulator.simulator import Simulator

HANGZHOU_DEMO = {"vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable", "vpn-hz4nodiag"}


@dataclass
class Sdk:
    """The official SDK pointed at a running simulator, in one signature and call mode."""

    simulator: Simulator
    clock: ManualClock
    endpoint: str
    algorithm: str | None
    asynchronous: bool

    def client(
        self,
        *,
        key_id: str = DEMO_ACCESS_KEY_ID,
        secret: str = DEMO_ACCESS_KEY_SECRET,
        token: str | None = None,
        region: str = "cn-hangzhou",
    ) -> Client:
        config = Config(
            access_key_id=key_id,
            access_key_secret=secret,
            security_token=token,
            region_id=region,
            endpoint=self.endpoint,
            protocol="http",
            read_timeout=10_000,
            connect_timeout=10_000,
        )
        if self.algorithm is not None:
            config.signature_algorithm = self.algorithm
        return Client(config)

    async def call(self, client: Client, operation: str, request: Any) -> Any:
        """`client.<operation>(request)`, or its `_async` twin; return the body model."""
        if self.asynchronous:
            response = await getattr(client, f"{operation}_async")(request)
        else:
            response = getattr(client, operation)(request)
        assert response.status_code == 200
        return response.body


@pytest.fixture(params=["v3-sync", "v3-async", "v1-sync", "v1-async"])
async def sdk(request: pytest.FixtureRequest) -> AsyncIterator[Sdk]:
    signature, mode = request.param.split("-")
    algorithm = "v2" if signature == "v1" else None
    # the SDK signs with the real time, so the manual clock starts there
    clock = ManualClock(time.time())
    simulator = Simulator(demo_scenario(), clock=clock)
    if mode == "sync":
        with run_simulator_in_thread(simulator) as server:
            yield Sdk(simulator, clock, server.endpoint, algorithm, asynchronous=False)
    else:
        async with SimulatorServer(simulator) as server:
            yield Sdk(simulator, clock, server.endpoint, algorithm, asynchronous=True)


def get_result(**fields: str) -> models.GetVpnGatewayDiagnoseResultRequest:
    return models.GetVpnGatewayDiagnoseResultRequest(region_id="cn-hangzhou", **fields)


async def test_sdk_reads_a_gateways_latest_diagnosis_as_the_scenario_says(sdk: Sdk) -> None:
    body = await sdk.call(
        sdk.client(), "get_vpn_gateway_diagnose_result", get_result(vpn_gateway_id="vpn-hz2quota")
    )
    assert (body.vpn_gateway_id, body.resource_instance_id, body.resource_type) == (
        "vpn-hz2quota",
        "vco-hz2quota",
        "IPsec",
    )
    assert (body.finished_count, body.total_count) == (7, 7)
    assert body.diagnose_id.startswith("vpndgn-")
    levels = {item.diagnose_name: item.diagnose_result_level for item in body.diagnose_result}
    assert levels == {
        "RouteEntryConflict": "normal",
        "VpnRouteQuota": "warning",
        "VpnIPsecQuota": "error",
        "VpnPbrRouteQuota": "normal",
        "VcoConfigConsistency": "normal",
        "VcoUserInternetIpConnectivity": "normal",
        "VcoPrivateConnectivity": "normal",
    }
    described = {
        item.diagnose_name: json.loads(item.diagnose_result_description)
        for item in body.diagnose_result
    }
    assert described["VpnRouteQuota"]["quantity"] == 100
    assert 83 <= described["VpnRouteQuota"]["used"] <= 87
    assert 96 <= described["VpnIPsecQuota"]["used"] <= 98
    assert described["VcoUserInternetIpConnectivity"]["targetIp"] == "203.0.113.12"


async def test_sdk_started_diagnosis_progresses_to_finished(sdk: Sdk) -> None:
    client = sdk.client()
    started = await sdk.call(
        client,
        "diagnose_vpn_gateway",
        models.DiagnoseVpnGatewayRequest(
            region_id="cn-hangzhou",
            vpn_gateway_id="vpn-hz4nodiag",
            resource_type="IPsec",
            resource_id="vco-hz4nodiag",
            ipsec_extend_info=json.dumps(
                {"PrivateSourceIp": "10.4.0.99", "PrivateDestinationIp": "192.168.4.99"}
            ),
        ),
    )
    by_id = get_result(diagnose_id=started.diagnose_id)

    running = await sdk.call(client, "get_vpn_gateway_diagnose_result", by_id)
    assert (running.finished_count, running.total_count, running.finish_time) == (0, 7, None)

    sdk.clock.advance(5)  # half of the demo's 10 s diagnosis
    halfway = await sdk.call(client, "get_vpn_gateway_diagnose_result", by_id)
    assert 0 < halfway.finished_count < 7
    assert len(halfway.diagnose_result) == halfway.finished_count

    sdk.clock.advance(5)
    done = await sdk.call(client, "get_vpn_gateway_diagnose_result", by_id)
    assert (done.finished_count, done.vpn_gateway_id) == (7, "vpn-hz4nodiag")
    assert done.finish_time is not None
    private = next(i for i in done.diagnose_result if i.diagnose_name == "VcoPrivateConnectivity")
    assert json.loads(private.diagnose_result_description)["srcIp"] == "10.4.0.99"


async def test_sdk_pages_through_gateways_filtered_by_tag(sdk: Sdk) -> None:
    client = sdk.client()
    pages = []
    for number in (1, 2):
        pages.append(
            await sdk.call(
                client,
                "describe_vpn_gateways",
                models.DescribeVpnGatewaysRequest(
                    region_id="cn-hangzhou",
                    page_number=number,
                    page_size=3,
                    tag=[models.DescribeVpnGatewaysRequestTag(key="env", value="demo")],
                ),
            )
        )
    first, second = (page.vpn_gateways.vpn_gateway for page in pages)
    assert (len(first), len(second), pages[0].total_count) == (3, 1, 4)
    assert {g.vpn_gateway_id for g in first + second} == HANGZHOU_DEMO
    expected = {spec.id: spec for spec in demo_scenario().gateways}
    for gateway in first + second:
        spec = expected[gateway.vpn_gateway_id]
        assert (gateway.name, gateway.vpc_id, gateway.spec, gateway.status) == (
            spec.name,
            spec.vpc_id,
            spec.spec,
            spec.status,
        )
        assert {t.key: t.value for t in gateway.tags.tag} == spec.tags


async def test_sdk_with_a_wrong_secret_raises_signature_does_not_match(sdk: Sdk) -> None:
    with pytest.raises(ClientException) as raised:
        await sdk.call(
            sdk.client(secret="wrong"),
            "get_vpn_gateway_diagnose_result",
            get_result(vpn_gateway_id="vpn-hz1healthy"),
        )
    assert (raised.value.status_code, raised.value.code) == (400, "SignatureDoesNotMatch")


@pytest.mark.parametrize("sdk", ["v3-sync", "v1-async"], indirect=True)
async def test_sdk_with_an_unknown_key_raises_invalid_access_key_id_not_found(sdk: Sdk) -> None:
    with pytest.raises(ClientException) as raised:
        await sdk.call(
            sdk.client(key_id="LTAI-unknown"),
            "get_vpn_gateway_diagnose_result",
            get_result(vpn_gateway_id="vpn-hz1healthy"),
        )
    assert (raised.value.status_code, raised.value.code) == (404, "InvalidAccessKeyId.NotFound")


@pytest.mark.parametrize("sdk", ["v3-async", "v1-sync"], indirect=True)
async def test_sdk_with_sts_credentials_is_accepted(sdk: Sdk) -> None:
    sdk.simulator.add_key_pair("STS.sdk", "sts-secret", security_token="sts-token")
    body = await sdk.call(
        sdk.client(key_id="STS.sdk", secret="sts-secret", token="sts-token"),
        "get_vpn_gateway_diagnose_result",
        get_result(vpn_gateway_id="vpn-hz1healthy"),
    )
    assert body.vpn_gateway_id == "vpn-hz1healthy"
    assert sdk.simulator.requests[-1].access_key_id == "STS.sdk"


@pytest.mark.parametrize("sdk", ["v3-sync", "v1-async"], indirect=True)
async def test_sdk_throttled_call_raises_throttling_exception_with_retry_after(sdk: Sdk) -> None:
    assert sdk.simulator.rate_limiter is not None
    sdk.simulator.rate_limiter.limits["GetVpnGatewayDiagnoseResult"] = 1
    client, request = sdk.client(), get_result(vpn_gateway_id="vpn-hz1healthy")
    await sdk.call(client, "get_vpn_gateway_diagnose_result", request)
    sdk.clock.advance(20)
    with pytest.raises(ThrottlingException) as raised:
        await sdk.call(client, "get_vpn_gateway_diagnose_result", request)
    assert (raised.value.status_code, raised.value.code) == (400, "Throttling.User")
    assert raised.value.retry_after == 40_000  # milliseconds until the window frees a call


@pytest.mark.parametrize("sdk", ["v3-async", "v1-sync"], indirect=True)
async def test_sdk_throttled_without_retry_after_raises_client_exception(sdk: Sdk) -> None:
    sdk.simulator.faults.add(Fault.throttle(action="DescribeVpnGateways"))
    with pytest.raises(ClientException) as raised:
        await sdk.call(
            sdk.client(),
            "describe_vpn_gateways",
            models.DescribeVpnGatewaysRequest(region_id="cn-hangzhou"),
        )
    assert not isinstance(raised.value, ThrottlingException)
    assert raised.value.code == "Throttling.User"


@pytest.mark.parametrize("sdk", ["v3-sync", "v1-async"], indirect=True)
async def test_sdk_reads_connections_with_their_tunnels(sdk: Sdk) -> None:
    body = await sdk.call(
        sdk.client(),
        "describe_vpn_connections",
        models.DescribeVpnConnectionsRequest(
            region_id="cn-hangzhou", vpn_gateway_id="vpn-hz3unreachable"
        ),
    )
    (connection,) = body.vpn_connections.vpn_connection
    assert (connection.vpn_connection_id, connection.attach_type, connection.state) == (
        "vco-hz3unreachable",
        "CEN",
        "attached",
    )
    assert connection.status == "ike_sa_not_established"
    assert connection.transit_router_id == "tr-hzdemo"
    assert connection.vco_health_check.status == "failed"
    assert [t.role for t in connection.tunnel_options_specification.tunnel_options] == [
        "master",
        "slave",
    ]


@pytest.mark.parametrize("sdk", ["v3-async", "v1-sync"], indirect=True)
async def test_sdk_service_unavailable_raises_server_exception(sdk: Sdk) -> None:
    sdk.simulator.faults.add(Fault.error(status=503))
    with pytest.raises(ServerException) as raised:
        await sdk.call(
            sdk.client(),
            "describe_vpn_gateways",
            models.DescribeVpnGatewaysRequest(region_id="cn-hangzhou"),
        )
    assert (raised.value.status_code, raised.value.code) == (503, "ServiceUnavailable")


async def test_sdk_creates_lists_and_deletes_a_route(sdk: Sdk) -> None:
    client = sdk.client()
    route = {
        "region_id": "cn-hangzhou",
        "vpn_connection_id": "vco-hz1healthy",
        "route_dest": "192.168.50.0/24",
        "next_hop": "vco-hz1healthy",
        "weight": 100,
    }
    created = await sdk.call(
        client,
        "create_vco_route_entry",
        models.CreateVcoRouteEntryRequest(description="branch 50", **route),
    )
    assert (created.route_dest, created.state, created.weight) == (
        "192.168.50.0/24",
        "published",
        100,
    )
    listed = await sdk.call(
        client,
        "describe_vco_route_entries",
        models.DescribeVcoRouteEntriesRequest(
            region_id="cn-hangzhou", vpn_connection_id="vco-hz1healthy"
        ),
    )
    assert [(r.route_dest, r.next_hop, r.state) for r in listed.vco_route_entries] == [
        ("192.168.50.0/24", "vco-hz1healthy", "published")
    ]
    assert [(c.route_entry_type, c.route_count) for c in listed.vpn_route_counts] == [("custom", 1)]
    sdk.clock.advance(60)  # the connection settles after the create
    deleted = await sdk.call(
        client, "delete_vco_route_entry", models.DeleteVcoRouteEntryRequest(**route)
    )
    assert deleted.request_id
    after = await sdk.call(
        client,
        "describe_vco_route_entries",
        models.DescribeVcoRouteEntriesRequest(
            region_id="cn-hangzhou", vpn_connection_id="vco-hz1healthy"
        ),
    )
    assert after.total_count == 0


@pytest.mark.parametrize("sdk", ["v3-sync", "v1-async"], indirect=True)
async def test_sdk_dry_run_create_raises_dry_run_operation(sdk: Sdk) -> None:
    request = models.CreateVcoRouteEntryRequest(
        region_id="cn-hangzhou",
        vpn_connection_id="vco-hz1healthy",
        route_dest="192.168.51.0/24",
        next_hop="vco-hz1healthy",
        weight=0,
        dry_run=True,
    )
    with pytest.raises(ClientException) as raised:
        await sdk.call(sdk.client(), "create_vco_route_entry", request)
    assert (raised.value.status_code, raised.value.code) == (400, "DryRunOperation")


@pytest.mark.parametrize("sdk", ["v3-async", "v1-sync"], indirect=True)
async def test_sdk_host_clock_twenty_minutes_ahead_raises_invalid_timestamp_expired(
    sdk: Sdk,
) -> None:
    sdk.clock.advance(-20 * 60)  # the API's clock behind: the SDK's date is 20 min ahead
    with pytest.raises(ClientException) as raised:
        await sdk.call(
            sdk.client(),
            "get_vpn_gateway_diagnose_result",
            get_result(vpn_gateway_id="vpn-hz1healthy"),
        )
    assert (raised.value.status_code, raised.value.code) == (400, "InvalidTimeStamp.Expired")
    assert "Specified time stamp or date value is expired." in raised.value.message


@pytest.mark.parametrize("sdk", ["v3-sync", "v1-async"], indirect=True)
async def test_sdk_request_without_region_raises_missing_region_id(sdk: Sdk) -> None:
    request = models.GetVpnGatewayDiagnoseResultRequest(vpn_gateway_id="vpn-hz1healthy")
    with pytest.raises(ClientException) as raised:
        await sdk.call(sdk.client(), "get_vpn_gateway_diagnose_result", request)
    assert (raised.value.status_code, raised.value.code) == (400, "MissingRegionId")
    assert "RegionId is mandatory for this action." in raised.value.message


@pytest.mark.parametrize("sdk", ["v3-async", "v1-sync"], indirect=True)
async def test_sdk_client_token_out_of_ascii_raises_param_error(sdk: Sdk) -> None:
    request = get_result(vpn_gateway_id="vpn-hz1healthy", client_token="tôken")
    with pytest.raises(ClientException) as raised:
        await sdk.call(sdk.client(), "get_vpn_gateway_diagnose_result", request)
    assert (raised.value.status_code, raised.value.code) == (400, "param_error")
