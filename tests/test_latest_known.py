"""Latest-known semantics, black-box: a whole exporter against the simulator over HTTP,
read through /metrics (DESIGN "Failure semantics", issue 11).

An outage or a revoked key makes data old, never makes a series vanish; credentials the
cloud rejects show as `aliyun_vpn_credentials_success 0`.
"""

from __future__ import annotations

import time
from typing import Any

from exporter.config.model import Config
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import demo_scenario
from exporter.simulator.simulator import Simulator
from tests.exporter_rig import DEMO_KEYS, Running, config, polled_once, running, samples, until

HANGZHOU = "default/cn-hangzhou"
LISTED = ["vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable"]
ITEM_FAMILIES = (
    "aliyun_vpn_diagnose_item_status",
    "aliyun_vpn_quota_used",
    "aliyun_vpn_probe_reachable",
    "aliyun_vpn_probe_rtt_seconds",
    "aliyun_vpn_config_consistent",
    "aliyun_vpn_connection_ipsec_status",
    "aliyun_vpn_gateway_info",
)


def every_5s(endpoint: str, **sections: Any) -> Config:
    return config(
        endpoint,
        [{"region_id": "cn-hangzhou", "gateways": LISTED}],
        poll={"interval": "5s"},
        **sections,
    )


def item_series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(family, labels) of every data series about the gateways."""
    return {
        (family, tuple(sorted(labels.items())))
        for family in ITEM_FAMILIES
        for labels, _ in samples(text, family)
    }


async def all_listed_once(run: Running) -> None:
    await polled_once(run)
    await until(
        lambda: len(run.samples("aliyun_vpn_connection_info")) >= len(LISTED),
        "the connections of every gateway listed",
    )


async def test_item_series_survive_45s_of_rejected_credentials_at_a_5s_interval() -> None:
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, every_5s) as run:
        await all_listed_once(run)
        before = item_series(await run.scrape())
        assert {f for f, _ in before} >= {"aliyun_vpn_quota_used", "aliyun_vpn_probe_reachable"}
        last_success = {
            labels["vpn_gateway_id"]: value
            for labels, value in run.samples("aliyun_vpn_poll_last_success_timestamp_seconds")
        }

        revoked = simulator.faults.add(Fault.error("InvalidAccessKeyId.NotFound", status=404))
        await until(
            lambda: all(value == 0 for _, value in run.samples("aliyun_vpn_poll_success")),
            "every poll failing with the rejected key",
            timeout=20,
        )
        # 45 s of failing polls later (the fleet's clock moved on; the old default,
        # 3 x the 5 s interval, would have dropped every item series by then).
        run.exporter.fleet.sweep(time.time() + 45)
        text = await run.scrape()
        assert item_series(text) == before
        assert samples(text, "aliyun_vpn_credentials_success", profile="default")[0][1] == 0
        assert {
            labels["vpn_gateway_id"]: value
            for labels, value in samples(text, "aliyun_vpn_poll_last_success_timestamp_seconds")
        } == last_success, "old data is exported as old"
        assert all(value == 1 for _, value in samples(text, "aliyun_vpn_gateway_found"))

        simulator.faults.remove(revoked.id)
        await until(
            lambda: (
                run.exporter.metrics.registry.get_sample_value(
                    "aliyun_vpn_credentials_success", {"profile": "default"}
                )
                == 1
            ),
            "credentials_success back to 1 after an accepted call",
            timeout=20,
        )


async def test_a_wrong_secret_is_credentials_failing() -> None:
    simulator = Simulator(demo_scenario(), throttling=False)

    def wrong_secret(endpoint: str) -> Config:
        keys = {**DEMO_KEYS, "access_key_secret": "not-the-secret"}
        return every_5s(endpoint, credentials={"default": keys})

    async with running(simulator, wrong_secret) as run:
        registry = run.exporter.metrics.registry
        await until(
            lambda: bool(
                registry.get_sample_value(
                    "aliyun_vpn_api_request_failures_total",
                    {"action": "GetVpnGatewayDiagnoseResult", "code": "SignatureDoesNotMatch"},
                )
            ),
            "a poll rejected",
        )
        # The keys resolve (the local chain is fine), but the cloud refuses them.
        text = await run.scrape()
        assert samples(text, "aliyun_vpn_credentials_success") == [({"profile": "default"}, 0)]


async def test_a_listed_gateway_the_api_does_not_know_keeps_its_series_and_is_not_found() -> None:
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, every_5s) as run:
        await all_listed_once(run)
        before = {s for s in item_series(run.text()) if ("vpn_gateway_id", "vpn-hz2quota") in s[1]}
        assert before
        simulator.faults.add(
            Fault.error(
                "InvalidVpnGatewayInstanceId.NotFound",
                status=404,
                action="GetVpnGatewayDiagnoseResult",
                gateway="vpn-hz2quota",
            )
        )
        await until(
            lambda: run.value("aliyun_vpn_gateway_found", vpn_gateway_id="vpn-hz2quota") == 0,
            "the gateway reported not found",
            timeout=20,
        )
        after = {s for s in item_series(run.text()) if ("vpn_gateway_id", "vpn-hz2quota") in s[1]}
        assert after == before
        assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 0
        assert run.value("aliyun_vpn_gateway_found", vpn_gateway_id="vpn-hz1healthy") == 1


async def test_targets_export_their_profile_and_diagnosis_ages() -> None:
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, every_5s) as run:
        text = await run.scrape()
        assert samples(text, "aliyun_vpn_target_info") == [
            ({"target": HANGZHOU, "profile": "default", "region_id": "cn-hangzhou"}, 1.0)
        ]
        assert samples(text, "aliyun_vpn_diagnose_max_age_seconds") == [
            ({"target": HANGZHOU}, 86400.0)
        ]
        assert not samples(text, "aliyun_vpn_diagnose_schedule_interval_seconds")

    def scheduled(endpoint: str) -> Config:
        return every_5s(endpoint, diagnose={"enabled": True, "interval": "1h", "timeout": "5m"})

    async with running(simulator, scheduled) as run:
        text = await run.scrape()
        assert samples(text, "aliyun_vpn_diagnose_schedule_interval_seconds") == [
            ({"target": HANGZHOU}, 3600.0)
        ]
        assert samples(text, "aliyun_vpn_diagnose_max_age_seconds") == [
            ({"target": HANGZHOU}, 2 * 3600.0 + 300.0)
        ]
