"""Connection status for every connection (DescribeVpnConnections): info, state, the IPsec
negotiation status as a state set, per-tunnel state and status, BGP and health check."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from exporter.cloud.connection_listing import parse_connections
from exporter.cloud.errors import InvalidResponse
from exporter.exposition.records import GatewayKey, GatewayRecord
from exporter.exposition.render import render_gateway
from exporter.model.connection import IPSEC_STATUSES, Tunnel, VpnConnection
from exporter.simulator.faults import Fault
from exporter.simulator.generator import generated_scenario
from exporter.simulator.scenario import demo_scenario
from exporter.simulator.simulator import Simulator
from tests.exporter_rig import (
    config,
    configured,
    polled_once,
    refreshed,
    running,
    samples,
    scenario,
)
from tests.required_tools import PROMTOOL, tool

ACTION = "DescribeVpnConnections"

SAMPLE: dict[str, Any] = {
    "RequestId": "req-1",
    "TotalCount": 2,
    "PageNumber": 1,
    "PageSize": 50,
    "VpnConnections": {
        "VpnConnection": [
            {
                "VpnConnectionId": "vco-dual",
                "VpnGatewayId": "vpn-a",
                "Name": "to-dc1",
                "State": "attached",
                "Status": "ipsec_sa_established",
                "AttachType": "CEN",
                "TransitRouterId": "tr-1",
                "VpnBgpConfig": {"Status": "success", "EnableBgp": "true"},
                "VcoHealthCheck": {"Enable": "true", "Status": "failed"},
                "TunnelOptionsSpecification": {
                    "TunnelOptions": [
                        {
                            "TunnelId": "tun-1",
                            "Role": "master",
                            "State": "active",
                            "Status": "ipsec_sa_established",
                        },
                        {
                            "TunnelId": "tun-2",
                            "Role": "slave",
                            "State": "active",
                            "Status": "ike_sa_not_established",
                        },
                        {"TunnelId": "tun-2", "Role": "slave"},
                    ]
                },
            },
            {
                "VpnConnectionId": "vco-single",
                "VpnGatewayId": "vpn-a",
                "Name": "to-dc2",
                "State": "active",
                "Status": "ike_sa_not_established",
                "AttachType": "VPNGW",
                "VcoHealthCheck": {"Enable": "false", "Status": ""},
            },
            {"VpnConnectionId": "vco-unattached", "Name": "no gateway"},
        ]
    },
}


def test_connections_are_read_with_tunnels_bgp_and_health_check() -> None:
    page = parse_connections(SAMPLE)
    dual, single = page.items
    assert dual == VpnConnection(
        vpn_connection_id="vco-dual",
        vpn_gateway_id="vpn-a",
        name="to-dc1",
        state="attached",
        status="ipsec_sa_established",
        attach_type="CEN",
        transit_router_id="tr-1",
        bgp_status="success",
        health_check_status="failed",
        tunnels=(
            Tunnel("tun-1", "master", "active", "ipsec_sa_established"),
            Tunnel("tun-2", "slave", "active", "ike_sa_not_established"),
        ),
    )
    assert single.tunnels == ()
    assert single.health_check_status is None, "a disabled health check has no status"
    assert single.bgp_status is None
    assert page.total == 2


def test_an_unreadable_connection_listing_is_an_invalid_response() -> None:
    with pytest.raises(InvalidResponse):
        parse_connections({"TotalCount": 1, "VpnConnections": {"VpnConnection": "x"}})


def rendered(*connections: VpnConnection) -> str:
    record = GatewayRecord(
        GatewayKey("t", "cn-hangzhou", "vpn-a"), vpn_connections=connections, vpn_connections_at=1.0
    )
    return b"".join(render_gateway(record)).decode()


def test_ipsec_status_is_a_state_set_of_the_documented_values() -> None:
    text = rendered(*parse_connections(SAMPLE).items)
    found = {
        labels["status"]: value
        for labels, value in samples(
            text, "aliyun_vpn_connection_ipsec_status", vpn_connection_id="vco-single"
        )
    }
    assert found == {status: float(status == "ike_sa_not_established") for status in IPSEC_STATUSES}


def test_an_undocumented_status_joins_the_state_set_at_one() -> None:
    connection = VpnConnection("vco-x", "vpn-a", "x", None, "negotiating", None, None, None, None)
    found = dict(
        (labels["status"], value)
        for labels, value in samples(rendered(connection), "aliyun_vpn_connection_ipsec_status")
    )
    assert found == {**dict.fromkeys(IPSEC_STATUSES, 0.0), "negotiating": 1.0}


def test_every_tunnel_has_info_state_and_its_own_state_set() -> None:
    text = rendered(*parse_connections(SAMPLE).items)
    info = samples(text, "aliyun_vpn_tunnel_info", vpn_connection_id="vco-dual")
    assert sorted((labels["tunnel_id"], labels["role"]) for labels, _ in info) == [
        ("tun-1", "master"),
        ("tun-2", "slave"),
    ]
    down = samples(
        text, "aliyun_vpn_tunnel_ipsec_status", tunnel_id="tun-2", status="ike_sa_not_established"
    )
    assert [value for _, value in down] == [1.0]
    assert len(samples(text, "aliyun_vpn_tunnel_ipsec_status")) == 8
    assert samples(text, "aliyun_vpn_tunnel_state", tunnel_id="tun-1", state="active")


def test_connection_info_state_bgp_and_health_check_series() -> None:
    text = rendered(*parse_connections(SAMPLE).items)
    ((labels, value),) = samples(text, "aliyun_vpn_connection_info", vpn_connection_id="vco-dual")
    assert value == 1
    assert (labels["name"], labels["attach_type"], labels["transit_router_id"]) == (
        "to-dc1",
        "CEN",
        "tr-1",
    )
    assert samples(
        text, "aliyun_vpn_connection_state", vpn_connection_id="vco-dual", state="attached"
    )
    assert samples(
        text, "aliyun_vpn_connection_bgp_status", vpn_connection_id="vco-dual", status="success"
    )
    assert samples(
        text,
        "aliyun_vpn_connection_health_check_status",
        vpn_connection_id="vco-dual",
        status="failed",
    )
    assert not samples(
        text, "aliyun_vpn_connection_health_check_status", vpn_connection_id="vco-single"
    )


# --- against the simulator ---------------------------------------------------------------


def demo_targets(endpoint: str) -> Any:
    return config(
        endpoint,
        [
            {"region_id": "cn-hangzhou", "discover": {}},
            {"region_id": "ap-southeast-1", "gateways": ["vpn-sg1inconsistent", "vpn-sg2lossy"]},
        ],
    )


async def test_every_demo_connection_reports_its_negotiation_status() -> None:
    async with running(Simulator(demo_scenario(), throttling=False), demo_targets) as run:
        await refreshed(run)
        established = {
            labels["vpn_connection_id"]: value
            for labels, value in run.samples(
                "aliyun_vpn_connection_ipsec_status", status="ipsec_sa_established"
            )
        }
        assert established == {
            "vco-hz1healthy": 1,
            "vco-hz2quota": 1,
            "vco-hz3unreachable": 0,
            "vco-hz4nodiag": 1,
            "vco-sg1inconsistent": 0,
            "vco-sg2lossy": 1,
        }
        assert (
            run.value(
                "aliyun_vpn_connection_ipsec_status",
                vpn_connection_id="vco-hz3unreachable",
                status="ike_sa_not_established",
            )
            == 1
        )
        assert (
            run.value(
                "aliyun_vpn_connection_health_check_status",
                vpn_connection_id="vco-hz3unreachable",
                status="failed",
            )
            == 1
        )
        ((info, _),) = run.samples("aliyun_vpn_connection_info", vpn_connection_id="vco-sg2lossy")
        assert info == {
            "target": "default/ap-southeast-1",
            "region_id": "ap-southeast-1",
            "vpn_gateway_id": "vpn-sg2lossy",
            "vpn_connection_id": "vco-sg2lossy",
            "name": "sg2-lossy-ipsec",
            "attach_type": "CEN",
            "transit_router_id": "tr-sgdemo",
        }
        assert (
            run.value("aliyun_vpn_listing_success", target="default/cn-hangzhou", action=ACTION)
            == 1
        )


async def test_one_tunnel_down_shows_on_that_tunnel_only() -> None:
    simulator = Simulator(
        scenario(
            [
                {
                    "id": "vpn-dual",
                    "name": "dual",
                    "region_id": "cn-hangzhou",
                    "vpc_id": "vpc-dual",
                    "connections": [
                        {
                            "id": "vco-dual",
                            "name": "dual",
                            "tunnels": [
                                {"status": "ipsec_sa_established"},
                                {"state": "active", "status": "ipsec_sa_not_established"},
                            ],
                        }
                    ],
                }
            ]
        ),
        throttling=False,
    )
    make = configured([{"region_id": "cn-hangzhou", "gateways": ["vpn-dual"]}])
    async with running(simulator, make) as run:
        await refreshed(run)
        down = {
            labels["tunnel_id"]: labels["status"]
            for labels, value in run.samples("aliyun_vpn_tunnel_ipsec_status")
            if value == 1
        }
        assert down == {
            "tun-dual1": "ipsec_sa_established",
            "tun-dual2": "ipsec_sa_not_established",
        }
        roles = {
            labels["tunnel_id"]: labels["role"]
            for labels, _ in run.samples("aliyun_vpn_tunnel_info")
        }
        assert roles == {"tun-dual1": "master", "tun-dual2": "slave"}


async def test_a_failed_listing_keeps_the_last_listed_status_however_old() -> None:
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, demo_targets) as run:
        await refreshed(run)
        simulator.faults.add(Fault.error("InternalError", status=500, action=ACTION))

        await run.exporter.inventory.refresh_connections("default/ap-southeast-1")

        assert (
            run.value("aliyun_vpn_listing_success", target="default/ap-southeast-1", action=ACTION)
            == 0
        )
        assert run.samples("aliyun_vpn_connection_info", vpn_connection_id="vco-sg2lossy")
        # Latest known (DESIGN "Failure semantics"): a day later, still failing, the
        # status is old but stays; only a successful listing without it removes it.
        run.exporter.fleet.sweep(time.time() + 86400)
        assert run.samples("aliyun_vpn_connection_info", vpn_connection_id="vco-sg2lossy")
        assert run.samples("aliyun_vpn_tunnel_ipsec_status", vpn_gateway_id="vpn-sg2lossy")


async def test_a_large_fleet_is_listed_by_region_pages_not_per_gateway() -> None:
    simulator = Simulator(generated_scenario(150, ["cn-hangzhou"]), throttling=False)
    make = configured([{"region_id": "cn-hangzhou", "discover": {}}])
    async with running(simulator, make) as run:
        await refreshed(run)
        simulator.journal.clear()
        await run.exporter.inventory.refresh_connections("default/cn-hangzhou")
        calls = run.calls(ACTION)
        assert [c["PageNumber"] for c in calls] == ["1", "2", "3"], "150 connections, 3 pages"
        assert all(c["PageSize"] == "50" for c in calls)
        assert len(run.samples("aliyun_vpn_connection_info")) == 150


async def test_connection_status_is_refreshed_every_poll_interval() -> None:
    make = configured(
        [{"region_id": "cn-hangzhou", "gateways": ["vpn-hz1healthy"], "interval": "2m"}]
    )
    async with running(Simulator(demo_scenario(), throttling=False), make) as run:
        job = run.exporter.scheduler.scheduler.get_job("connections:default/cn-hangzhou")
        assert job.trigger.interval.total_seconds() == 120


async def test_the_exposition_passes_promtool_check_metrics() -> None:
    promtool = tool(*PROMTOOL)
    async with running(Simulator(demo_scenario(), throttling=False), demo_targets) as run:
        await refreshed(run)
        await polled_once(run)
        text = await run.scrape()
    assert "aliyun_vpn_tunnel_ipsec_status" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
