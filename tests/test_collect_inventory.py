"""Discovery: which gateways a target polls, found by DescribeVpnGateways (filters, pages of
50, its own interval), merged with the listed ones, kept when a listing fails, dropped with
their series when they disappear; and `aliyun_vpn_gateway_info` for all of them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.errors import InvalidResponse
from exporter.cloud.gateway_listing import describe, discover, parse_gateways
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.config.loader import load_config
from exporter.config.model import DiscoverConfig
from exporter.config.values import ConfigError
from exporter.model.gateway import tag_label_name
from exporter.simulator.faults import Fault
from exporter.simulator.fleet import gateway_from_spec
from exporter.simulator.generator import generated_scenario
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    GatewaySpec,
    demo_scenario,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from tests.exporter_rig import (
    config,
    configured,
    polled_once,
    refreshed,
    running,
    scenario,
    until,
)

ACTION = "DescribeVpnGateways"


def gateway(gateway_id: str, **fields: Any) -> dict[str, Any]:
    suffix = gateway_id.partition("-")[2]
    return {
        "id": gateway_id,
        "name": suffix,
        "region_id": "cn-hangzhou",
        "vpc_id": f"vpc-{suffix}",
        **fields,
    }


FILTERED = [
    gateway("vpn-prod1", tags={"env": "prod", "team": "net"}, vpc_id="vpc-a"),
    gateway("vpn-prod2", tags={"env": "prod"}, vpc_id="vpc-b", status="updating"),
    gateway("vpn-prod3", tags={"env": "prod"}, vpc_id="vpc-c"),
    gateway("vpn-prod4", tags={"env": "prod"}, vpc_id="vpc-a", resource_group_id="rg-other"),
    gateway("vpn-prod5", tags={"env": "prod"}, vpc_id="vpc-b", status="deleting"),
    gateway("vpn-test1", tags={"env": "test"}, vpc_id="vpc-a"),
    gateway("vpn-sg1", region_id="ap-southeast-1", tags={"env": "prod"}, vpc_id="vpc-a"),
]


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    """Builds a VpcClient for a simulator served on loopback."""
    http: httpx.AsyncClient = make_http_client(timeout=5.0)

    def make(server: SimulatorServer, region: str = "cn-hangzhou") -> VpcClient:
        return VpcClient(
            http,
            StaticCredentialsProvider(
                "default", Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
            ),
            region,
            budgets=RateBudgets(share=1.0),
            endpoint=server.url,
            retry=RetryPolicy(max_retries=0),
        )

    yield make
    await http.aclose()


# --- reading DescribeVpnGateways ---------------------------------------------------------


def test_a_page_of_gateways_is_read_with_tags_and_total() -> None:
    page = parse_gateways(
        {
            "TotalCount": "3",
            "PageNumber": 1,
            "PageSize": 50,
            "VpnGateways": {
                "VpnGateway": [
                    {
                        "VpnGatewayId": "vpn-bp1example0001",
                        "Name": "prod",
                        "VpcId": "vpc-bp1example",
                        "Spec": "20M",
                        "Status": "active",
                        "Tags": {"Tag": [{"Key": "env", "Value": "prod"}, {"Key": "x"}]},
                    },
                    {"Name": "no id: skipped"},
                    "not an object",
                ]
            },
        }
    )
    assert page.total == 3
    (only,) = page.items
    assert (only.vpn_gateway_id, only.name, only.vpc_id, only.spec, only.status) == (
        "vpn-bp1example0001",
        "prod",
        "vpc-bp1example",
        "20M",
        "active",
    )
    assert only.tags == {"env": "prod", "x": ""}
    assert only.info(["env", "team"]).tags == {"env": "prod"}, "only allow-listed tags"


def test_an_empty_region_is_an_empty_page() -> None:
    page = parse_gateways({"TotalCount": 0, "VpnGateways": {"VpnGateway": []}})
    assert (page.total, page.items) == (0, [])
    assert parse_gateways({"RequestId": "r"}).items == []


@pytest.mark.parametrize(
    "payload",
    [
        {"TotalCount": 1, "VpnGateways": "garbage"},
        {"TotalCount": 1, "VpnGateways": {"VpnGateway": {"VpnGatewayId": "vpn-a"}}},
        {"TotalCount": "many", "VpnGateways": {"VpnGateway": []}},
    ],
)
def test_an_unreadable_listing_is_an_invalid_response(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponse):
        parse_gateways(payload)


# --- listing against the simulator -------------------------------------------------------


async def test_discovery_pages_through_the_region_fifty_at_a_time(client_for: Any) -> None:
    simulator = Simulator(generated_scenario(120, ["cn-hangzhou"]), throttling=False)
    async with SimulatorServer(simulator) as server:
        found = await discover(client_for(server), DiscoverConfig())
    assert len(found) == 120
    pages = [r.params for r in simulator.requests if r.action == ACTION]
    assert [(p["PageNumber"], p["PageSize"]) for p in pages] == [
        ("1", "50"),
        ("2", "50"),
        ("3", "50"),
    ]


async def test_discovery_filters_by_tags_vpcs_resource_group_and_statuses(client_for: Any) -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    settings = DiscoverConfig(
        tags={"env": "prod"},
        vpc_ids=("vpc-a", "vpc-b"),
        resource_group_id="rg-default",
        statuses=("active", "updating"),
    )
    async with SimulatorServer(simulator) as server:
        found = await discover(client_for(server), settings)
    assert [g.vpn_gateway_id for g in found] == ["vpn-prod1", "vpn-prod2"]
    calls = [r.params for r in simulator.requests if r.action == ACTION]
    assert sorted(c["VpcId"] for c in calls) == ["vpc-a", "vpc-b"], "one listing per VPC"
    for call in calls:
        assert (call["Tag.1.Key"], call["Tag.1.Value"]) == ("env", "prod")
        assert call["ResourceGroupId"] == "rg-default"
        assert "Status" not in call, "several statuses are filtered after listing"


async def test_one_status_is_filtered_by_the_api(client_for: Any) -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    async with SimulatorServer(simulator) as server:
        found = await discover(client_for(server), DiscoverConfig(statuses=("updating",)))
    assert [g.vpn_gateway_id for g in found] == ["vpn-prod2"]
    assert all(r.params.get("Status") == "updating" for r in simulator.requests)


async def test_few_listed_gateways_of_a_large_region_are_described_one_by_one(
    client_for: Any,
) -> None:
    simulator = Simulator(generated_scenario(500, ["cn-hangzhou"]), throttling=False)
    wanted = sorted(g.id for g in simulator.fleet.find_gateways("cn-hangzhou", {}))[:3]
    async with SimulatorServer(simulator) as server:
        lookup = await describe(client_for(server), [*wanted, "vpn-nosuchgateway"])
    assert {g: [x.vpn_gateway_id for x in found] for g, found in lookup.found.items()} == {
        **{g: [g] for g in wanted},
        "vpn-nosuchgateway": [],
    }
    calls = [r.params for r in simulator.requests if r.action == ACTION]
    # The first page says the region has 500 (10 pages): four lookups by ID cost less.
    assert len(calls) == 1 + 4
    assert sorted(c["VpnGatewayId"] for c in calls[1:]) == sorted([*wanted, "vpn-nosuchgateway"])


async def test_many_listed_gateways_of_a_small_region_are_read_from_its_listing(
    client_for: Any,
) -> None:
    simulator = Simulator(generated_scenario(60, ["cn-hangzhou"]), throttling=False)
    wanted = sorted(g.id for g in simulator.fleet.find_gateways("cn-hangzhou", {}))[:10]
    async with SimulatorServer(simulator) as server:
        lookup = await describe(client_for(server), wanted)
    assert all(len(lookup.found[g]) == 1 for g in wanted)
    calls = [r.params for r in simulator.requests if r.action == ACTION]
    assert [c.get("PageNumber") for c in calls] == ["1", "2"], "two pages, not ten lookups"
    assert not any("VpnGatewayId" in c for c in calls)


# --- a discovering exporter --------------------------------------------------------------


def discovering(endpoint: str, **discover: Any) -> Any:
    return config(
        endpoint,
        [{"region_id": "cn-hangzhou", "discover": {"tags": {"env": "prod"}, **discover}}],
        gateway_info={"tags": ["team", "app.kubernetes.io/name"]},
    )


async def test_discovered_gateways_are_polled_and_described() -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    async with running(simulator, discovering) as run:
        await refreshed(run)
        await polled_once(run)
        assert run.polled() == {"vpn-prod1", "vpn-prod2", "vpn-prod3", "vpn-prod4", "vpn-prod5"}
        assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-prod3") == 1
        (labels, value), *_ = run.samples("aliyun_vpn_gateway_info", vpn_gateway_id="vpn-prod1")
        assert value == 1
        assert labels == {
            "target": "default/cn-hangzhou",
            "region_id": "cn-hangzhou",
            "vpn_gateway_id": "vpn-prod1",
            "name": "prod1",
            "vpc_id": "vpc-a",
            "spec": "10M",
            "status": "active",
            "tag_team": "net",
        }, "allow-listed tags only (env is not)"
        assert run.value("aliyun_vpn_target_gateways", target="default/cn-hangzhou") == 5
        assert run.value("aliyun_vpn_listing_success", action=ACTION) == 1


async def test_a_gateway_that_disappears_stops_being_polled_and_its_series_go() -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    async with running(simulator, discovering) as run:
        await refreshed(run)
        await polled_once(run)
        assert run.samples("aliyun_vpn_gateway_info", vpn_gateway_id="vpn-prod2")
        simulator.fleet.remove_gateway("vpn-prod2")

        await run.exporter.inventory.refresh_gateways("default/cn-hangzhou")

        assert "vpn-prod2" not in run.polled()
        assert 'vpn_gateway_id="vpn-prod2"' not in run.text()
        assert run.value("aliyun_vpn_target_gateways") == 4
        plan = run.exporter.scheduler.plan("default/cn-hangzhou")
        assert "vpn-prod2" not in plan.gateways, "no later cycle polls it"


async def test_a_new_gateway_is_polled_soon_not_a_cycle_later() -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    async with running(simulator, discovering) as run:
        await refreshed(run)
        await polled_once(run)
        simulator.fleet.add_gateway(
            gateway_from_spec(
                GatewaySpec.model_validate(gateway("vpn-prod9", tags={"env": "prod"}))
            )
        )

        await run.exporter.inventory.refresh_gateways("default/cn-hangzhou")

        assert "vpn-prod9" in run.polled()
        await until(
            lambda: run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-prod9") == 1,
            "the new gateway's first poll (the poll interval is 1h)",
        )
        await until(
            lambda: bool(run.samples("aliyun_vpn_connection_info", vpn_gateway_id="vpn-prod9")),
            "the new gateway's connections",
        )


async def test_a_failed_discovery_keeps_the_gateways_found_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    async with running(simulator, discovering) as run:
        await refreshed(run)
        simulator.faults.add(Fault.error("ServiceUnavailable", status=503, action=ACTION))
        caplog.set_level(logging.WARNING, logger="exporter.collect.inventory")

        for _ in range(2):
            await run.exporter.inventory.refresh_gateways("default/cn-hangzhou")

        assert len(run.polled()) == 5
        assert run.samples("aliyun_vpn_gateway_info", vpn_gateway_id="vpn-prod1"), "info kept"
        assert run.value("aliyun_vpn_listing_success", action=ACTION) == 0
        assert run.value("aliyun_vpn_listing_last_success_timestamp_seconds", action=ACTION)
        failures = [r for r in caplog.records if "discovery failed" in r.getMessage()]
        assert len(failures) == 1, "logged once per change, not per refresh"

        simulator.faults.clear()
        await run.exporter.inventory.refresh_gateways("default/cn-hangzhou")
        assert run.value("aliyun_vpn_listing_success", action=ACTION) == 1


async def test_listed_and_discovered_gateways_are_merged_once() -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)

    def make(endpoint: str) -> Any:
        return config(
            endpoint,
            [
                {
                    "region_id": "cn-hangzhou",
                    "gateways": ["vpn-test1", "vpn-prod1"],
                    "discover": {"tags": {"env": "prod"}, "vpc_ids": ["vpc-a"]},
                },
                {"name": "other", "region_id": "cn-hangzhou", "gateways": ["vpn-prod4"]},
            ],
        )

    async with running(simulator, make) as run:
        await refreshed(run)
        inventory = run.exporter.inventory.targets["default/cn-hangzhou"]
        # vpn-prod1 is listed and discovered: once; vpn-prod4 is another target's.
        assert inventory.gateways == ("vpn-test1", "vpn-prod1")
        assert run.exporter.inventory.targets["other"].gateways == ("vpn-prod4",)
        # The listed gateway discovery does not select is described all the same.
        assert run.samples("aliyun_vpn_gateway_info", vpn_gateway_id="vpn-test1")


async def test_listed_gateways_get_their_info_without_discovery() -> None:
    def make(endpoint: str) -> Any:
        return config(
            endpoint,
            [{"region_id": "cn-hangzhou", "gateways": ["vpn-hz1healthy", "vpn-hz2quota"]}],
        )

    async with running(Simulator(demo_scenario(), throttling=False), make) as run:
        await refreshed(run)
        (labels, _), *_ = run.samples("aliyun_vpn_gateway_info", vpn_gateway_id="vpn-hz2quota")
        assert (labels["name"], labels["vpc_id"], labels["spec"], labels["status"]) == (
            "hz2-quota",
            "vpc-hz2demo",
            "20M",
            "active",
        )
        job = run.exporter.scheduler.scheduler.get_job("gateways:default/cn-hangzhou")
        assert job.trigger.interval.total_seconds() == 900, "refreshed every 15 minutes"


async def test_a_listed_gateway_the_api_does_not_know_is_named_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.collect.inventory")

    def make(endpoint: str) -> Any:
        return config(endpoint, [{"region_id": "cn-hangzhou", "gateways": ["vpn-nosuchgw"]}])

    async with running(Simulator(demo_scenario(), throttling=False), make) as run:
        await refreshed(run)
        assert not run.samples("aliyun_vpn_gateway_info")
        assert "vpn-nosuchgw" in run.polled(), "a listed gateway is polled all the same"
    assert any(
        "does not know listed gateways" in r.getMessage() and "vpn-nosuchgw" in r.getMessage()
        for r in caplog.records
    )


async def test_discovery_runs_on_its_own_interval() -> None:
    async with running(
        Simulator(scenario(FILTERED), throttling=False),
        lambda endpoint: discovering(endpoint, interval="7m"),
    ) as run:
        scheduler = run.exporter.scheduler.scheduler
        assert (
            scheduler.get_job("gateways:default/cn-hangzhou").trigger.interval.total_seconds()
            == 420
        )
        poll = scheduler.get_job("poll:default/cn-hangzhou")
        assert poll.trigger.interval.total_seconds() == 3600


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("env", "tag_env"),
        ("app.kubernetes.io/name", "tag_app_kubernetes_io_name"),
        ("成本", "tag___"),
    ],
)
def test_tag_keys_become_valid_label_names(key: str, label: str) -> None:
    assert tag_label_name(key) == label


def test_two_tags_that_would_share_a_label_are_a_config_error(tmp_path: Any) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "targets: [{region_id: cn-hangzhou, discover: {}}]\n"
        "gateway_info: {tags: [app.name, app_name]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == (
        ("gateway_info.tags[1]", "becomes the label tag_app_name, as tags[0] does"),
    )


async def test_a_discovery_that_matches_nothing_is_a_warning_naming_target_and_filters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    caplog.set_level(logging.INFO, logger="exporter.collect.inventory")
    make = configured(
        [
            {
                "name": "nothing-here",
                "region_id": "cn-hangzhou",
                "discover": {"tags": {"env": "staging"}, "statuses": ["active"]},
            }
        ]
    )
    async with running(simulator, make) as run:
        await refreshed(run)
        await run.exporter.inventory.refresh_gateways("nothing-here")
        assert run.value("aliyun_vpn_target_gateways", target="nothing-here") == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            "discovery matched no gateway: check the filters, the region and the account "
            "of the credentials"
        ], "once, not per refresh"
        fields = warnings[0].__dict__["fields"]
        assert fields["target"] == "nothing-here"
        assert fields["filters"] == "tags={env: staging} statuses=[active]"

        simulator.fleet.add_gateway(
            gateway_from_spec(
                GatewaySpec.model_validate(gateway("vpn-stage1", tags={"env": "staging"}))
            )
        )
        await run.exporter.inventory.refresh_gateways("nothing-here")
        assert run.value("aliyun_vpn_target_gateways", target="nothing-here") == 1
        assert any(r.getMessage() == "discovery match recovered" for r in caplog.records)


async def test_a_wrong_secret_in_a_listing_says_so_not_a_missing_permission(
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = Simulator(scenario(FILTERED), throttling=False)
    caplog.set_level(logging.WARNING, logger="exporter.collect")
    bad_keys = {
        "source": "access_key",
        "access_key_id": DEMO_ACCESS_KEY_ID,
        "access_key_secret": "not-the-secret",
    }

    def make(endpoint: str) -> Any:
        return config(
            endpoint,
            [{"region_id": "cn-hangzhou", "gateways": ["vpn-prod1"]}],
            credentials={"default": bad_keys},
        )

    async with running(simulator, make) as run:
        await until(
            lambda: run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-prod1") == 0,
            "a failed poll",
        )
        await run.exporter.inventory.refresh_gateways("default/cn-hangzhou")
    messages = [r.getMessage() for r in caplog.records]
    signature = [m for m in messages if "SignatureDoesNotMatch" in m]
    assert signature, messages
    for message in signature:
        assert "the AccessKey secret is wrong" in message
        assert "RAM" not in message, "a wrong secret is not a missing permission"
