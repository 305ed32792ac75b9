"""Scenarios: the demo fleet's fixed levels, drift over time, the generator, YAML files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from exporter.simulator.clock import parse_api_time
from exporter.simulator.generator import PROFILES, generated_scenario
from exporter.simulator.items import (
    ITEM_ORDER,
    ConfigDiff,
    ConsistencyItem,
    QuotaItem,
    describe,
)
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    ScenarioError,
    demo_scenario,
    load_scenario,
)
from exporter.simulator.simulator import Simulator
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import START, Served

clock, scenario, served = wire.clock, wire.scenario, wire.served

GET = "GetVpnGatewayDiagnoseResult"

DEMO_LEVELS = {
    ("cn-hangzhou", "vpn-hz1healthy"): {},
    ("cn-hangzhou", "vpn-hz2quota"): {"VpnRouteQuota": "warning", "VpnIPsecQuota": "error"},
    ("cn-hangzhou", "vpn-hz3unreachable"): {
        "VcoUserInternetIpConnectivity": "error",
        "VcoPrivateConnectivity": "error",
    },
    ("ap-southeast-1", "vpn-sg1inconsistent"): {
        "VcoConfigConsistency": "error",
        "VcoPrivateConnectivity": "error",
    },
    ("ap-southeast-1", "vpn-sg2lossy"): {"VcoPrivateConnectivity": "warning"},
}
"""Items that are not normal, per demo gateway (vpn-hz4nodiag has no diagnosis)."""


async def latest(served: Served, region: str, gateway: str) -> dict[str, Any]:
    return await served.client.ok(GET, RegionId=region, VpnGatewayId=gateway)


def readings(body: dict[str, Any]) -> dict[str, Any]:
    return {
        item["DiagnoseName"]: json.loads(item["DiagnoseResultDescription"])
        for item in body["DiagnoseResult"]
    }


# The demo fleet --------------------------------------------------------------------------


def test_demo_fleet_has_its_fixed_gateways_connections_and_key() -> None:
    demo = demo_scenario()
    assert [(g.region_id, g.id, g.name) for g in demo.gateways] == [
        ("cn-hangzhou", "vpn-hz1healthy", "hz1-healthy"),
        ("cn-hangzhou", "vpn-hz2quota", "hz2-quota"),
        ("cn-hangzhou", "vpn-hz3unreachable", "hz3-unreachable"),
        ("cn-hangzhou", "vpn-hz4nodiag", "hz4-nodiag"),
        ("ap-southeast-1", "vpn-sg1inconsistent", "sg1-inconsistent"),
        ("ap-southeast-1", "vpn-sg2lossy", "sg2-lossy"),
    ]
    for gateway in demo.gateways:
        assert [c.id for c in gateway.connections] == [gateway.id.replace("vpn-", "vco-")]
        assert gateway.vpc_id.startswith("vpc-" + gateway.id[4:7])
        assert gateway.tags["env"] == "demo"
    assert [k.access_key_id for k in demo.key_pairs] == [DEMO_ACCESS_KEY_ID]


@pytest.mark.parametrize(("region", "gateway"), list(DEMO_LEVELS), ids=lambda v: str(v))
async def test_demo_gateway_items_have_their_fixed_levels(
    served: Served, region: str, gateway: str
) -> None:
    body = await latest(served, region, gateway)
    levels = {i["DiagnoseName"]: i["DiagnoseResultLevel"] for i in body["DiagnoseResult"]}
    assert levels == {
        name: DEMO_LEVELS[(region, gateway)].get(name, "normal") for name in ITEM_ORDER
    }


async def test_demo_quota_gateway_is_near_85_and_97_percent(served: Served) -> None:
    for _ in range(5):
        found = readings(await latest(served, "cn-hangzhou", "vpn-hz2quota"))
        assert 0.83 <= found["VpnRouteQuota"]["used"] / found["VpnRouteQuota"]["quantity"] <= 0.87
        assert 0.96 <= found["VpnIPsecQuota"]["used"] / found["VpnIPsecQuota"]["quantity"] <= 0.98
        served.clock.advance(700)


async def test_demo_unreachable_gateway_public_probe_gets_no_reply(served: Served) -> None:
    found = readings(await latest(served, "cn-hangzhou", "vpn-hz3unreachable"))
    assert found["VcoUserInternetIpConnectivity"] == {
        "targetIp": "203.0.113.13",
        "rtt": -1.0,
        "lossRate": 100.0,
    }


async def test_demo_inconsistent_gateway_has_three_differing_settings(served: Served) -> None:
    found = readings(await latest(served, "ap-southeast-1", "vpn-sg1inconsistent"))
    consistency = found["VcoConfigConsistency"]
    assert len(consistency["vcoDiffConf"]) == 3
    assert {d["name"] for d in consistency["vcoDiffConf"]} == {
        "IkeConfig.IkeEncAlg",
        "IkeConfig.IkeLifetime",
        "IpsecConfig.IpsecPfs",
    }
    assert consistency["vcoConf"]["IkeConfig.IkeEncAlg"] == "aes"
    assert consistency["vcoRunningConf"]["IkeConfig.IkeEncAlg"] == "aes256"


async def test_demo_lossy_gateway_private_probe_is_slow_and_lossy(served: Served) -> None:
    served.simulator.faults.clear()  # the demo's every-2nd throttling is not this test's
    for _ in range(5):
        probe = readings(await latest(served, "ap-southeast-1", "vpn-sg2lossy"))[
            "VcoPrivateConnectivity"
        ]
        assert (probe["srcIp"], probe["targetIp"]) == ("10.22.0.10", "192.168.22.10")
        assert 160 <= probe["rtt"] <= 200
        assert 6 <= probe["lossRate"] <= 10
        served.clock.advance(300)


# Time -----------------------------------------------------------------------------------


async def test_a_standing_diagnosis_is_finished_whenever_it_is_read(served: Served) -> None:
    for _ in range(8):
        body = await latest(served, "cn-hangzhou", "vpn-hz1healthy")
        assert body["FinishedCount"] == 7
        assert parse_api_time(body["FinishTime"]) <= served.clock()
        served.clock.advance(9)


async def test_a_gateway_is_rediagnosed_every_minute(served: Served) -> None:
    first = await latest(served, "cn-hangzhou", "vpn-hz1healthy")
    served.clock.advance(60)
    second = await latest(served, "cn-hangzhou", "vpn-hz1healthy")
    assert second["DiagnoseId"] != first["DiagnoseId"]
    begun = parse_api_time(second["BeginTime"]) - parse_api_time(first["BeginTime"])
    assert begun == 60


async def test_probe_and_quota_values_drift_between_diagnoses(served: Served) -> None:
    rtts, used = set(), set()
    for _ in range(12):
        found = readings(await latest(served, "cn-hangzhou", "vpn-hz1healthy"))
        rtts.add(found["VcoUserInternetIpConnectivity"]["rtt"])
        used.add(found["VpnRouteQuota"]["used"])
        served.clock.advance(250)
    assert len(rtts) > 3 and len(used) > 1


async def test_one_diagnosis_reads_the_same_later(served: Served) -> None:
    first = await latest(served, "cn-hangzhou", "vpn-hz2quota")
    served.clock.advance(600)
    again = await served.client.ok(GET, RegionId="cn-hangzhou", DiagnoseId=first["DiagnoseId"])
    assert again["DiagnoseResult"] == first["DiagnoseResult"]


def test_drift_keeps_a_quota_inside_its_band_all_day() -> None:
    item = QuotaItem(name="VpnRouteQuota", level="warning", quantity=100, used=85, drift=2)
    seen = {
        describe(
            item,
            at=START + minute * 60,
            phase=0.7,
            internet_target="",
            private_src="",
            private_target="",
        )["used"]
        for minute in range(24 * 60)
    }
    assert seen == {83, 84, 85, 86, 87}


# The generator ---------------------------------------------------------------------------


def test_every_generated_gateway_has_all_seven_items() -> None:
    fleet = Simulator(generated_scenario(500, ["cn-hangzhou", "ap-southeast-1"])).fleet
    for region in fleet.regions():
        for gateway in fleet.find_gateways(region, {}):
            assert tuple(item.name for item in gateway.items) == ITEM_ORDER


def test_generated_fleet_has_every_level_class() -> None:
    fleet = Simulator(generated_scenario(1000)).fleet
    profiles = {g.tags["profile"] for g in fleet.find_gateways("cn-hangzhou", {})}
    assert profiles == {profile.name for profile in PROFILES}


def test_generated_fleet_is_reproducible_by_seed() -> None:
    def profiles(seed: int) -> list[str]:
        fleet = Simulator(generated_scenario(200, seed=seed)).fleet
        return [g.tags["profile"] for g in fleet.find_gateways("cn-hangzhou", {})]

    assert profiles(7) == profiles(7)
    assert profiles(7) != profiles(8)


def test_generated_fleet_spreads_over_its_regions() -> None:
    fleet = Simulator(
        generated_scenario(9, ["cn-hangzhou", "ap-southeast-1", "eu-central-1"])
    ).fleet
    assert [len(fleet.find_gateways(r, {})) for r in fleet.regions()] == [3, 3, 3]


@pytest.mark.parametrize("scenario", [generated_scenario(10_000)], ids=["10000-gateways"])
async def test_a_ten_thousand_gateway_fleet_pages_and_diagnoses(served: Served) -> None:
    page = await served.client.ok(
        "DescribeVpnGateways", RegionId="cn-hangzhou", PageSize="50", PageNumber="200"
    )
    assert page["TotalCount"] == 10_000
    assert page["VpnGateways"]["VpnGateway"][-1]["VpnGatewayId"] == "vpn-gen0009999"
    healthy = next(g for g in page["VpnGateways"]["VpnGateway"] if "healthy" in g["Name"])
    body = await latest(served, "cn-hangzhou", healthy["VpnGatewayId"])
    found = readings(body)
    assert set(found["VcoPrivateConnectivity"]) == {"targetIp", "srcIp", "rtt", "lossRate"}
    assert set(found["VcoUserInternetIpConnectivity"]) == {"targetIp", "rtt", "lossRate"}


# YAML ----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


MINIMAL = """
key_pairs: [{access_key_id: k, access_key_secret: s}]
gateways:
  - id: vpn-a1
    name: a1
    region_id: cn-shanghai
    vpc_id: vpc-a1
    items:
      - {name: VpnPbrRouteQuota, level: error, quantity: 10, used: 10}
generate: {gateways: 3, regions: [cn-shanghai]}
"""


async def test_yaml_scenario_serves_its_gateways_and_generated_ones(tmp_path: Path) -> None:
    simulator = Simulator(load_scenario(write(tmp_path, MINIMAL)))
    assert [g.id for g in simulator.fleet.find_gateways("cn-shanghai", {})] == [
        "vpn-a1",
        "vpn-gen0000000",
        "vpn-gen0000001",
        "vpn-gen0000002",
    ]
    gateway = simulator.fleet.gateway("vpn-a1")
    assert gateway is not None
    assert [c.id for c in gateway.connections] == ["vco-a1"]
    assert gateway.items[3].level == "error"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (MINIMAL.replace("name: a1", "nmae: a1"), "gateways[0].nmae"),
        (MINIMAL.replace("level: error", "level: fatal"), "gateways[0].items[0]"),
        (MINIMAL.replace("vpc-a1", "VPC_A1"), "gateways[0].vpc_id"),
        (MINIMAL.replace("generate:", "generat:"), "generat"),
        (MINIMAL + "faults: [{kind: latency, code: X}]\n", "faults[0]"),
    ],
    ids=["misspelt-key", "unknown-level", "bad-vpc-id", "misspelt-top-level", "fault-field"],
)
def test_yaml_scenario_with_a_mistake_names_where_it_is(
    tmp_path: Path, text: str, where: str
) -> None:
    with pytest.raises(ScenarioError) as raised:
        load_scenario(write(tmp_path, text))
    assert str(raised.value).startswith(str(tmp_path / "scenario.yaml"))
    assert where in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL.replace(
                "used: 10}", "used: 10}\n      - {name: VpnPbrRouteQuota, quantity: 5, used: 1}"
            ),
            "listed twice",
        ),
        (
            MINIMAL.replace(
                "vpc_id: vpc-a1",
                "vpc_id: vpc-a1\n    connections: [{id: vco-x, name: x, attach_type: CEN}]",
            ),
            "transit_router_id",
        ),
        (
            MINIMAL.replace(
                "key_pairs: [{access_key_id: k, access_key_secret: s}]", "key_pairs: []"
            ),
            "key_pairs",
        ),
    ],
    ids=["item-twice", "cen-without-router", "no-keys"],
)
def test_yaml_scenario_that_cannot_be_served_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, text))


def test_yaml_scenario_with_duplicate_gateway_ids_is_refused(tmp_path: Path) -> None:
    gateway = MINIMAL.split("gateways:\n")[1].split("generate:")[0]
    text = MINIMAL.replace("generate:", gateway + "generate:")
    with pytest.raises(ScenarioError, match="duplicate gateway IDs: vpn-a1"):
        load_scenario(write(tmp_path, text))


def test_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.yaml"):
        load_scenario(tmp_path / "missing.yaml")


def test_scenario_file_that_is_not_yaml_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError):
        load_scenario(write(tmp_path, "key_pairs: [unclosed"))


def test_a_consistency_item_takes_one_vco_lack_conf_form() -> None:
    with pytest.raises(ValidationError, match="boolean vcoLackConf"):
        ConsistencyItem(
            name="VcoConfigConsistency", lack=["IkeConfig.IkePfs"], lack_as_boolean=True
        )
    with pytest.raises(ValidationError, match="no differing settings"):
        ConsistencyItem(
            name="VcoConfigConsistency",
            peer_unavailable=True,
            diff=[ConfigDiff(setting="IkeConfig.IkePfs", local="group2", peer="group14")],
        )


async def test_demo_healthy_gateway_writes_vco_lack_conf_as_false(served: Served) -> None:
    found = readings(await latest(served, "cn-hangzhou", "vpn-hz1healthy"))
    assert found["VcoConfigConsistency"]["vcoLackConf"] is False
    assert found["VcoConfigConsistency"]["vcoDiffConf"] == []


def test_the_readmes_scenario_example_is_a_scenario_the_simulator_serves(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Scenario files") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    path = tmp_path / "scenario.yaml"
    path.write_text(example, encoding="utf-8")
    simulator = Simulator(load_scenario(path))
    assert len(simulator.fleet) == 2 + 100, "the two listed gateways and the generated ones"
    lab1 = simulator.fleet.gateway("vpn-lab1")
    assert lab1 is not None and simulator.fleet.connection("vco-lab1") is not None
    assert simulator.fleet.gateway("vpn-lab2") is not None
    assert simulator.fleet.connection("vco-lab2") is not None, "one connection by default"
