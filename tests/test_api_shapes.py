"""Shapes the API pages leave open, served by the simulator and read by the whole exporter.

Each test runs the simulator over real HTTP with a scenario in one of the forms the pages
allow, and reads what a user would see: the exposition.
"""

from __future__ import annotations

from typing import Any

from exporter.simulator.simulator import Simulator
from tests.exporter_rig import configured, polled_once, running, scenario


def gateway(gateway_id: str, *items: dict[str, Any]) -> dict[str, Any]:
    suffix = gateway_id.removeprefix("vpn-")
    return {
        "id": gateway_id,
        "name": suffix,
        "region_id": "cn-hangzhou",
        "vpc_id": f"vpc-{suffix}",
        "items": list(items),
    }


def targets(*gateway_ids: str) -> list[dict[str, Any]]:
    return [{"region_id": "cn-hangzhou", "gateways": list(gateway_ids)}]


async def test_vco_lack_conf_as_a_boolean_is_read_and_peer_availability_exported() -> None:
    unavailable = gateway(
        "vpn-peerless",
        {"name": "VcoConfigConsistency", "level": "warning", "peer_unavailable": True},
    )
    boolean_false = gateway(
        "vpn-boolfalse", {"name": "VcoConfigConsistency", "lack_as_boolean": True}
    )
    listed = gateway("vpn-listed")
    simulator = Simulator(scenario([unavailable, boolean_false, listed]), throttling=False)
    async with running(
        simulator, configured(targets("vpn-peerless", "vpn-boolfalse", "vpn-listed"))
    ) as run:
        await polled_once(run)
        assert run.value("aliyun_vpn_config_peer_available", vpn_gateway_id="vpn-peerless") == 0
        # consistency unknown: not called consistent, not called inconsistent
        assert run.value("aliyun_vpn_config_consistent", vpn_gateway_id="vpn-peerless") is None
        assert run.value("aliyun_vpn_config_diff_entries", vpn_gateway_id="vpn-peerless") is None
        assert (
            run.value(
                "aliyun_vpn_diagnose_item_status",
                vpn_gateway_id="vpn-peerless",
                item="VcoConfigConsistency",
                level="warning",
            )
            == 1
        )
        for consistent in ("vpn-boolfalse", "vpn-listed"):
            assert run.value("aliyun_vpn_config_consistent", vpn_gateway_id=consistent) == 1
            assert run.value("aliyun_vpn_config_peer_available", vpn_gateway_id=consistent) == 1
            assert run.value("aliyun_vpn_config_diff_entries", vpn_gateway_id=consistent) == 0
        assert (
            run.exporter.metrics.registry.get_sample_value(
                "aliyun_vpn_description_parse_errors_total", {"item": "VcoConfigConsistency"}
            )
            is None
        )
