"""Per-target intervals inside shared budgets: each target keeps its own interval while the
account's and region's budget allows it; when it does not, the targets sharing it slow down
together; and a running target's pace and gateways can change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exporter.app import Exporter, ListenSettings
from exporter.collect.planner import Demand, TargetPlan, effective_intervals
from exporter.collect.poller import Poller
from exporter.collect.scheduler import PollScheduler
from exporter.config.model import Config
from exporter.exposition.fleet import Fleet
from exporter.exposition.render import Exposition
from exporter.telemetry.self_metrics import SelfMetrics
from tests.exporter_rig import DEMO_KEYS, samples
from tests.fakes import FakeClock

RESULT = "GetVpnGatewayDiagnoseResult"
RATE = 96 / 60  # 80 % of 120 calls a minute


def rate(action: str) -> float:
    return {RESULT: RATE, "DiagnoseVpnGateway": 0.8}[action]


def test_a_fast_small_target_keeps_its_interval_beside_a_slow_large_one() -> None:
    intervals = effective_intervals(
        [
            Demand("poll:fast", ("acct", "cn-hangzhou"), 60, {RESULT: 10}),
            Demand("poll:slow", ("acct", "cn-hangzhou"), 3600, {RESULT: 1000}),
        ],
        rate,
    )
    # 10/60 + 1000/3600 = 0.44 calls/s, well inside 1.6/s: nobody is stretched.
    assert intervals == {"poll:fast": 60, "poll:slow": 3600}


def test_targets_sharing_a_short_budget_slow_down_together() -> None:
    intervals = effective_intervals(
        [
            Demand("poll:a", ("acct", "cn-hangzhou"), 60, {RESULT: 96}),
            Demand("poll:b", ("acct", "cn-hangzhou"), 300, {RESULT: 480}),
        ],
        rate,
    )
    # They want 1.6 + 1.6 = 3.2 calls/s of 1.6: each takes twice its interval.
    assert intervals == {"poll:a": pytest.approx(120), "poll:b": pytest.approx(600)}


def test_other_accounts_and_regions_have_budgets_of_their_own() -> None:
    intervals = effective_intervals(
        [
            Demand("poll:a", ("acct", "cn-hangzhou"), 60, {RESULT: 96}),
            Demand("poll:b", ("other", "cn-hangzhou"), 60, {RESULT: 96}),
            Demand("poll:c", ("acct", "cn-beijing"), 60, {RESULT: 96}),
        ],
        rate,
    )
    assert intervals == {"poll:a": 60, "poll:b": 60, "poll:c": 60}


def test_a_job_calling_two_actions_follows_the_tighter_budget() -> None:
    intervals = effective_intervals(
        [Demand("diagnose:a", ("acct", "r"), 60, {"DiagnoseVpnGateway": 96, RESULT: 96})],
        rate,
    )
    assert intervals == {"diagnose:a": pytest.approx(60 * 1.6 / 0.8)}


def exporter_for(targets: list[dict[str, Any]], **sections: Any) -> Exporter:
    config = Config.model_validate(
        {
            "credentials": {"default": DEMO_KEYS, **sections.pop("credentials", {})},
            "poll": {"interval": "5m"},
            "api": {"endpoint": "http://127.0.0.1:9"},
            "targets": targets,
            **sections,
        }
    )
    return Exporter(config, listen=ListenSettings(address="127.0.0.1:0"), metrics=SelfMetrics())


def gateways(prefix: str, count: int) -> list[str]:
    return [f"vpn-{prefix}{i:05d}" for i in range(count)]


def test_each_target_is_polled_at_its_own_interval() -> None:
    exporter = exporter_for(
        [
            {
                "name": "critical",
                "region_id": "cn-hangzhou",
                "interval": "1m",
                "gateways": gateways("c", 10),
            },
            {"name": "rest", "region_id": "cn-hangzhou", "gateways": gateways("r", 300)},
            {
                "name": "huge",
                "region_id": "cn-beijing",
                "interval": "1m",
                "gateways": gateways("h", 200),
            },
        ]
    )
    plans = {plan.name: plan for plan in exporter.scheduler.plans}
    assert (plans["critical"].interval, plans["critical"].effective_interval) == (60, 60)
    assert (plans["rest"].interval, plans["rest"].effective_interval) == (300, 300)
    # 200 gateways a minute in cn-beijing want 3.3 calls/s of 1.6: stretched to 125 s.
    assert plans["huge"].interval == 60
    assert plans["huge"].effective_interval == pytest.approx(200 / RATE)
    assert plans["critical"].stale_after is None, "latest known data is kept by default"


async def test_the_poll_jobs_and_interval_gauges_follow_the_plan() -> None:
    exporter = exporter_for(
        [
            {
                "name": "critical",
                "region_id": "cn-hangzhou",
                "interval": "1m",
                "gateways": gateways("c", 2),
            },
            {"name": "rest", "region_id": "cn-hangzhou", "gateways": gateways("r", 2)},
        ]
    )
    exporter.scheduler.start()
    try:
        jobs = exporter.scheduler.scheduler
        assert jobs.get_job("poll:critical").trigger.interval.total_seconds() == 60
        assert jobs.get_job("poll:rest").trigger.interval.total_seconds() == 300
        text = b"".join(exporter.exposition.chunks()).decode()
        intervals = {
            labels["target"]: value
            for labels, value in samples(text, "aliyun_vpn_poll_interval_seconds")
        }
        assert intervals == {"critical": 60, "rest": 300}
    finally:
        await exporter.scheduler.stop()


def test_profiles_of_one_account_share_its_budgets() -> None:
    exporter = exporter_for(
        [
            {
                "name": "a",
                "region_id": "cn-hangzhou",
                "credentials": "ops",
                "gateways": gateways("a", 1),
            },
            {
                "name": "b",
                "region_id": "cn-hangzhou",
                "credentials": "audit",
                "gateways": gateways("b", 1),
            },
            {
                "name": "c",
                "region_id": "cn-hangzhou",
                "credentials": "role",
                "gateways": gateways("c", 1),
            },
            {"name": "d", "region_id": "cn-hangzhou", "gateways": gateways("d", 1)},
        ],
        credentials={
            "ops": {**DEMO_KEYS, "account_id": "1234"},
            "audit": {**DEMO_KEYS, "account_id": "1234"},
            "role": {
                "source": "ram_role_arn",
                "role_arn": "acs:ram::5678:role/vpn",
                "base_profile": "ops",
            },
        },
    )
    config = exporter.config
    assert [config.account_of(p) for p in ("ops", "audit", "role", "default")] == [
        "1234",
        "1234",
        "5678",
        "profile:default",
    ]
    clients = {
        target.name: exporter.client(target.credentials, target.region_id)
        for target in config.targets
    }
    assert clients["a"].account == clients["b"].account == "1234"
    budget = exporter.budgets.get("1234", "cn-hangzhou", RESULT)
    assert clients["a"]._action(RESULT)[0] is budget
    assert clients["b"]._action(RESULT)[0] is budget
    assert clients["c"]._action(RESULT)[0] is not budget


# --- a running target's plan changes -----------------------------------------------------


class Recording:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float]] = []

    async def get_vpn_gateway_diagnose_result(self, **params: Any) -> dict[str, Any]:
        self.calls.append((params["vpn_gateway_id"], self.clock.monotonic()))
        from exporter.cloud.errors import CloudError

        raise CloudError(RESULT, "none", status=404, code="InvalidVpnGatewayId.NotFound")


async def drain() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_new_gateways_of_a_running_target_are_polled_at_once_and_the_cycle_retimed() -> None:
    clock = FakeClock()
    source = Recording(clock)
    fleet = Fleet(Exposition())
    plan = TargetPlan("t", "cn-hangzhou", [], source, 60.0, 60.0, startup_spacing=0.5)
    scheduler = PollScheduler([plan], Poller(fleet, SelfMetrics(), clock), fleet, clock)
    scheduler.start()
    try:
        await scheduler.run_cycle(plan)  # the first cycle, before discovery found anything
        start = clock.monotonic()

        scheduler.update_plan("t", gateways=["vpn-a", "vpn-b", "vpn-c"], effective_interval=90)
        await drain()
        for _ in range(5):
            await clock.sleep(0.5)
            await drain()

        assert [(g, at - start) for g, at in source.calls] == [
            ("vpn-a", 0.0),
            ("vpn-b", 0.5),
            ("vpn-c", 1.0),
        ]
        job = scheduler.scheduler.get_job("poll:t")
        assert job.trigger.interval.total_seconds() == 90
        text = b"".join(fleet.exposition.chunks()).decode()
        assert samples(text, "aliyun_vpn_poll_effective_interval_seconds") == [
            ({"target": "t"}, 90.0)
        ]

        scheduler.update_plan("t", gateways=["vpn-a"])
        assert {key.vpn_gateway_id for key in fleet.records} == {"vpn-a"}
    finally:
        await scheduler.stop()
