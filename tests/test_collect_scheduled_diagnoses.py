"""Scheduled diagnoses: DiagnoseVpnGateway per connection (IPsecExtendInfo from the config),
GetVpnGatewayDiagnoseResult by DiagnoseId until finished or timed out, items attributed to
the connection, starts spread over the interval inside the budget, counters; and a
diagnosis started in the console still shows through the latest-result poll."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.errors import CloudError
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.collect.inventory import Inventory
from exporter.collect.poller import Poller
from exporter.collect.scheduled_diagnoses import Diagnoses
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import GatewayKey
from exporter.exposition.render import Exposition
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.exporter_rig import config, configured, running, samples, scenario, until
from tests.fakes import FakeClock

TARGET = "default/cn-hangzhou"
GATEWAY = "vpn-two"
TWO_CONNECTIONS = [
    {
        "id": GATEWAY,
        "name": "two",
        "region_id": "cn-hangzhou",
        "vpc_id": "vpc-two",
        "connections": [
            {"id": "vco-twoa", "name": "a", "local_ip": "10.0.0.1", "remote_ip": "192.168.0.1"},
            {"id": "vco-twob", "name": "b", "local_ip": "10.0.1.1", "remote_ip": "192.168.1.1"},
        ],
        "items": [{"name": "VcoPrivateConnectivity", "level": "warning", "rtt_ms": 50}],
    }
]
EXTEND_INFO = {"private_source_ip": "10.0.1.99", "private_destination_ip": "192.168.1.99"}


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Rig:
    simulator: Simulator
    clock: FakeClock
    client: VpcClient
    fleet: Fleet
    inventory: Inventory
    diagnoses: Diagnoses
    poller: Poller
    metrics: SelfMetrics

    def text(self) -> str:
        return b"".join(self.fleet.exposition.chunks()).decode()

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"target": TARGET, **labels}) or 0.0

    def fleet_stale_after(self) -> float:
        stale_after = self.inventory.poll_plan(TARGET).stale_after
        assert stale_after is not None, "the rig opts in to poll.stale_after"
        return stale_after

    def calls(self, action: str) -> list[dict[str, str]]:
        return [r.params for r in self.simulator.requests if r.action == action]

    async def diagnose(self, connection: str) -> None:
        await self.diagnoses.diagnose(self.inventory.targets[TARGET], GATEWAY, connection)


def rig_config(endpoint: str, **diagnose: Any) -> Config:
    return config(
        endpoint,
        [{"region_id": "cn-hangzhou", "gateways": [GATEWAY], "interval": "1m"}],
        # Opted in to dropping old data, so that a scheduled diagnosis' keep_until shows.
        poll={"stale_after": "3m"},
        diagnose={
            "enabled": True,
            "interval": "1h",
            "timeout": "1m",
            "result_interval": "5s",
            "connections": {"vco-twob": EXTEND_INFO},
            **diagnose,
        },
    )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    # One fake clock for the exporter and the simulator: the diagnosis' progress follows
    # the exporter's waits, and nothing sleeps for real.
    clock = FakeClock(time.time())
    simulator = Simulator(scenario(TWO_CONNECTIONS), clock=clock.time, throttling=False)
    async with SimulatorServer(simulator) as server:
        http: httpx.AsyncClient = make_http_client(timeout=5.0)
        metrics = SelfMetrics()
        settings = rig_config(server.url)
        budgets = RateBudgets(share=1.0, sleep=no_sleep)
        client = VpcClient(
            http,
            StaticCredentialsProvider(
                "default", Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
            ),
            "cn-hangzhou",
            budgets=budgets,
            metrics=metrics,
            endpoint=server.url,
            retry=RetryPolicy(max_retries=1),
            sleep=no_sleep,
            wall_clock=clock.time,
        )
        fleet = Fleet(Exposition())
        inventory = Inventory(
            settings, client_for=lambda *_: client, budgets=budgets, fleet=fleet, clock=clock
        )
        for plan in inventory.poll_plans():
            fleet.configure_target(plan.record(), plan.keys, stale_after=plan.stale_after)
        await inventory.refresh_gateways(TARGET)
        await inventory.refresh_connections(TARGET)
        await inventory.stop()
        diagnoses = Diagnoses(settings.diagnose, inventory, fleet, metrics, clock)
        try:
            yield Rig(
                simulator,
                clock,
                client,
                fleet,
                inventory,
                diagnoses,
                Poller(fleet, metrics, clock),
                metrics,
            )
        finally:
            await diagnoses.stop()
            await http.aclose()


async def test_a_diagnosis_is_started_then_read_by_its_id_until_it_finishes(rig: Rig) -> None:
    await rig.diagnose("vco-twoa")

    (start,) = rig.calls("DiagnoseVpnGateway")
    assert (start["VpnGatewayId"], start["ResourceType"], start["ResourceId"]) == (
        GATEWAY,
        "IPsec",
        "vco-twoa",
    )
    assert start["ClientToken"], "retries of the start must not start it twice"
    reads = rig.calls("GetVpnGatewayDiagnoseResult")
    # The demo diagnosis takes 10 s; read every 5 s: running at 5 s, finished at 10 s.
    assert len(reads) == 2
    assert {r["DiagnoseId"] for r in reads} == {rig.simulator.requests[-1].params["DiagnoseId"]}
    assert rig.count("aliyun_vpn_diagnoses_started_total") == 1
    assert rig.count("aliyun_vpn_diagnoses_finished_total") == 1
    assert rig.count("aliyun_vpn_diagnoses_timed_out_total") == 0


async def test_items_are_attributed_to_the_diagnosed_connection(rig: Rig) -> None:
    await rig.diagnose("vco-twob")

    text = rig.text()
    items = samples(text, "aliyun_vpn_diagnose_item_status", level="warning")
    assert {labels["vpn_connection_id"] for labels, _ in items} == {"vco-twob"}
    assert samples(
        text,
        "aliyun_vpn_diagnose_items_finished",
        vpn_gateway_id=GATEWAY,
        vpn_connection_id="vco-twob",
    ) == [(samples(text, "aliyun_vpn_diagnose_items_finished")[0][0], 7.0)]
    assert samples(text, "aliyun_vpn_diagnose_running") == [
        (samples(text, "aliyun_vpn_diagnose_running")[0][0], 0.0)
    ]
    assert not samples(text, "aliyun_vpn_poll_success"), "diagnosis reads are not polls"


async def test_ipsec_extend_info_comes_from_the_config(rig: Rig) -> None:
    await rig.diagnose("vco-twob")
    await rig.diagnose("vco-twoa")

    with_info, without = rig.calls("DiagnoseVpnGateway")
    assert json.loads(with_info["IPsecExtendInfo"]) == {
        "PrivateSourceIp": "10.0.1.99",
        "PrivateDestinationIp": "192.168.1.99",
    }
    assert "IPsecExtendInfo" not in without
    probe = samples(
        rig.text(),
        "aliyun_vpn_probe_rtt_seconds",
        vpn_connection_id="vco-twob",
        item="VcoPrivateConnectivity",
    )
    assert [(labels["source_ip"], labels["target_ip"]) for labels, _ in probe] == [
        ("10.0.1.99", "192.168.1.99")
    ]


async def test_a_diagnosis_that_never_finishes_times_out_showing_its_progress(rig: Rig) -> None:
    rig.simulator.faults.add(Fault.never_finish(action="DiagnoseVpnGateway", gateway=GATEWAY))

    await rig.diagnose("vco-twoa")

    assert rig.count("aliyun_vpn_diagnoses_timed_out_total") == 1
    assert rig.count("aliyun_vpn_diagnoses_finished_total") == 0
    # A 1 m timeout read every 5 s: 12 reads, then the exporter gives up.
    assert len(rig.calls("GetVpnGatewayDiagnoseResult")) == 12
    text = rig.text()
    assert [v for _, v in samples(text, "aliyun_vpn_diagnose_running")] == [1.0]
    assert [v for _, v in samples(text, "aliyun_vpn_diagnose_items_finished")] == [6.0]
    assert [v for _, v in samples(text, "aliyun_vpn_diagnose_items_expected")] == [7.0]


async def test_a_diagnosis_that_cannot_start_is_counted_under_its_code_and_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.simulator.faults.add(Fault.error("Forbidden.RAM", status=403, action="DiagnoseVpnGateway"))
    caplog.set_level(logging.WARNING, logger="exporter.collect.scheduled_diagnoses")

    await rig.diagnose("vco-twoa")
    await rig.diagnose("vco-twoa")

    assert rig.count("aliyun_vpn_diagnoses_failed_total", code="Forbidden.RAM") == 2
    assert rig.count("aliyun_vpn_diagnoses_started_total") == 0
    assert not rig.calls("GetVpnGatewayDiagnoseResult")
    assert len([r for r in caplog.records if "cannot start" in r.getMessage()]) == 1


async def test_a_diagnosis_the_api_reports_as_failed_stops_being_read(rig: Rig) -> None:
    rig.simulator.faults.add(
        Fault.error(
            "IncorrectStatus.DiagnoseTimeout", status=400, action="GetVpnGatewayDiagnoseResult"
        )
    )

    await rig.diagnose("vco-twoa")

    assert len(rig.calls("GetVpnGatewayDiagnoseResult")) == 1
    assert rig.count("aliyun_vpn_diagnoses_started_total") == 1
    assert (
        rig.count("aliyun_vpn_diagnoses_failed_total", code="IncorrectStatus.DiagnoseTimeout") == 1
    )


async def test_a_console_diagnosis_is_still_picked_up_by_the_latest_result_poll(rig: Rig) -> None:
    await rig.diagnose("vco-twob")
    # Someone starts a diagnosis of the other connection in the console.
    console = await rig.client.diagnose_vpn_gateway(GATEWAY, "vco-twoa")
    rig.clock.advance(30)

    await rig.poller.poll(GatewayKey(TARGET, "cn-hangzhou", GATEWAY), rig.client)

    text = rig.text()
    assert [value for _, value in samples(text, "aliyun_vpn_poll_success")] == [1.0]
    finished = {
        labels["vpn_connection_id"]
        for labels, _ in samples(text, "aliyun_vpn_diagnose_finish_timestamp_seconds")
    }
    assert finished == {"vco-twoa", "vco-twob"}, "the console's diagnosis beside the exporter's"
    reads = rig.calls("GetVpnGatewayDiagnoseResult")
    assert reads[-1] == {"RegionId": "cn-hangzhou", "VpnGatewayId": GATEWAY}
    assert console["DiagnoseId"] not in {r.get("DiagnoseId") for r in reads}


async def test_a_scheduled_diagnosis_is_kept_until_the_next_one_is_due(rig: Rig) -> None:
    await rig.diagnose("vco-twoa")
    await rig.diagnose("vco-twob")  # now the gateway's latest: polls confirm only this one
    stale_after = rig.fleet_stale_after()
    keep = 2 * rig.inventory.diagnose_interval(TARGET)
    assert keep > stale_after + 60, "polled every minute, diagnosed every hour"
    now = rig.clock.time()

    rig.fleet.sweep(now + stale_after + 60)
    connections = {
        labels["vpn_connection_id"]
        for labels, _ in samples(rig.text(), "aliyun_vpn_diagnose_items_finished")
    }
    assert connections == {"vco-twoa", "vco-twob"}, "older than stale_after, still kept"

    rig.fleet.sweep(now + keep + stale_after)
    assert not samples(rig.text(), "aliyun_vpn_diagnose_items_finished")


# --- cycles: spread over the interval, inside the budget --------------------------------


class RecordingRunner:
    """Starts nothing: notes when each diagnosis was asked for."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.starts: list[tuple[str, float]] = []

    async def diagnose_vpn_gateway(
        self, vpn_gateway_id: str, vpn_connection_id: str, **_: Any
    ) -> dict[str, Any]:
        self.starts.append((vpn_connection_id, self.clock.monotonic()))
        raise CloudError("DiagnoseVpnGateway", "no", status=400, code="InvalidParameter")


async def cycle_rig(connections: int) -> tuple[Diagnoses, RecordingRunner, FakeClock]:
    clock = FakeClock()
    runner = RecordingRunner(clock)
    settings = rig_config("http://127.0.0.1:9")
    fleet = Fleet(Exposition())
    inventory = Inventory(
        settings, client_for=lambda *_: runner, budgets=RateBudgets(), fleet=fleet, clock=clock
    )
    target = inventory.targets[TARGET]
    from exporter.model.connection import VpnConnection

    target.connections[GATEWAY] = tuple(
        VpnConnection(f"vco-c{i}", GATEWAY, f"c{i}", None, None, None, None, None, None)
        for i in range(connections)
    )
    target.connections_listed.set()
    return Diagnoses(settings.diagnose, inventory, fleet, SelfMetrics(), clock), runner, clock


async def drain() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_later_cycles_spread_the_starts_evenly_over_the_interval() -> None:
    diagnoses, runner, clock = await cycle_rig(4)
    await diagnoses.run_cycle(TARGET)  # the first cycle runs at the budget's pace
    await drain()
    runner.starts.clear()
    start = clock.monotonic()

    await diagnoses.run_cycle(TARGET)
    await drain()

    offsets = [at - start for _, at in runner.starts]
    assert [c for c, _ in runner.starts] == ["vco-c0", "vco-c1", "vco-c2", "vco-c3"]
    assert [b - a for a, b in itertools.pairwise(offsets)] == pytest.approx([900.0] * 3)
    assert offsets[-1] < 3600


async def test_the_first_cycle_starts_at_the_budgets_pace() -> None:
    diagnoses, runner, clock = await cycle_rig(3)
    start = clock.monotonic()

    await diagnoses.run_cycle(TARGET)
    await drain()

    # DiagnoseVpnGateway: 80 % of an assumed 60/min, one gateway on the budget: 1.25 s apart.
    assert [at - start for _, at in runner.starts] == pytest.approx([0.0, 1.25, 2.5])


async def test_the_first_cycle_waits_for_the_connections_to_be_listed() -> None:
    diagnoses, runner, _ = await cycle_rig(2)
    target = diagnoses.inventory.targets[TARGET]
    target.connections_listed.clear()

    cycle = asyncio.create_task(diagnoses.run_cycle(TARGET))
    await drain()
    assert runner.starts == []
    target.connections_listed.set()
    await cycle
    await drain()
    assert len(runner.starts) == 2


def test_diagnoses_share_the_budget_with_polls_and_stretch_when_it_is_short() -> None:
    settings = rig_config("http://127.0.0.1:9")
    inventory = Inventory(
        settings,
        client_for=lambda *_: None,
        budgets=RateBudgets(),
        fleet=Fleet(Exposition()),
        clock=FakeClock(),
    )
    target = inventory.targets[TARGET]
    from exporter.model.connection import VpnConnection

    # 6,000 connections an hour want 100 starts a minute; the budget gives 48.
    target.connections[GATEWAY] = tuple(
        VpnConnection(f"vco-c{i}", GATEWAY, "c", None, None, None, None, None, None)
        for i in range(6000)
    )
    inventory.replan()
    # Starts alone would stretch 100/48 times; their result reads (3 each, 300/min, beside
    # one poll a minute) against the 96/min of GetVpnGatewayDiagnoseResult stretch more,
    # and the polls of that budget with them.
    factor = (6000 * 3 / 3600 + 1 / 60) / (96 / 60)
    assert inventory.diagnose_interval(TARGET) == pytest.approx(3600 * factor)
    assert inventory.effective_interval(TARGET) == pytest.approx(60 * factor)


# --- the whole exporter, on real time ----------------------------------------------------


async def test_the_exporter_diagnoses_every_connection_on_its_own() -> None:
    simulator = Simulator(
        scenario(TWO_CONNECTIONS, diagnosis={"duration": 0.3, "rediagnose_every": 3600}),
        throttling=False,
    )
    make = configured(
        [{"region_id": "cn-hangzhou", "gateways": [GATEWAY]}],
        diagnose={"enabled": True, "interval": "1h", "timeout": "5s", "result_interval": "100ms"},
    )
    async with running(simulator, make) as run:
        metrics = run.exporter.metrics.registry

        def finished() -> float:
            return (
                metrics.get_sample_value("aliyun_vpn_diagnoses_finished_total", {"target": TARGET})
                or 0.0
            )

        await until(lambda: finished() == 2, "both connections diagnosed")
        job = run.exporter.scheduler.scheduler.get_job(f"diagnose:{TARGET}")
        assert job.trigger.interval.total_seconds() == 3600
        started = {p["ResourceId"] for p in run.calls("DiagnoseVpnGateway")}
        assert started == {"vco-twoa", "vco-twob"}


# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diagnose", "path", "message"),
    [
        ("{enabled: true, timeout: 5s, result_interval: 5s}", "diagnose", "shorter than timeout"),
        ("{enabled: true, interval: 5m, timeout: 5m}", "diagnose", "shorter than interval"),
        (
            "{connections: {vpn-x: {private_source_ip: 10.0.0.1, "
            "private_destination_ip: 10.0.0.2}}}",
            "diagnose.connections",
            "not a VPN connection ID",
        ),
        (
            "{connections: {vco-x: {private_source_ip: 10.0.0.300, "
            "private_destination_ip: 1.2.3.4}}}",
            "diagnose.connections.vco-x.private_source_ip",
            "IPv4",
        ),
        ("{connections: {vco-x: {private_source_ip: 10.0.0.1}}}", "", "missing required key"),
    ],
)
def test_diagnose_settings_are_checked(
    tmp_path: Path, diagnose: str, path: str, message: str
) -> None:
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        f"targets: [{{region_id: cn-hangzhou, gateways: [vpn-a]}}]\ndiagnose: {diagnose}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, {})
    assert any(where.startswith(path) and message in text for where, text in caught.value.errors), (
        caught.value.errors
    )
