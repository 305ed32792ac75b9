"""What one poll means for a gateway's series: DESIGN's failure semantics per API answer.

Each test polls through the real client and the simulator over HTTP, with faults injected
by the simulator, and reads the outcome from the rendered exposition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.collect.poller import Poller
from exporter.exposition.fleet import Fleet
from exporter.exposition.records import GatewayKey, TargetRecord
from exporter.exposition.render import Exposition
from exporter.simulator.faults import DescriptionMode, Fault
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, demo_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.fakes import FakeClock

ACTION = "GetVpnGatewayDiagnoseResult"
TARGET = "default/cn-hangzhou"


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Rig:
    simulator: Simulator
    client: VpcClient
    poller: Poller
    fleet: Fleet
    metrics: SelfMetrics
    clock: FakeClock

    def key(self, gateway: str) -> GatewayKey:
        return GatewayKey(TARGET, "cn-hangzhou", gateway)

    async def poll(self, gateway: str) -> None:
        await self.poller.poll(self.key(gateway), self.client)

    def text(self) -> str:
        return b"".join(self.fleet.exposition.chunks()).decode()

    def value(self, name: str, **labels: str) -> float | None:
        for line in self.text().splitlines():
            if line.startswith(name + "{"):
                body, value = line.rsplit(" ", 1)
                pairs = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', body))
                if all(pairs.get(k) == v for k, v in labels.items()):
                    return float(value)
        return None

    def failures(self, code: str) -> float:
        return (
            self.metrics.registry.get_sample_value(
                "aliyun_vpn_api_request_failures_total", {"action": ACTION, "code": code}
            )
            or 0.0
        )


GATEWAYS = ["vpn-hz1healthy", "vpn-hz2quota", "vpn-hz3unreachable", "vpn-hz4nodiag", "vpn-nosuchgw"]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    simulator = Simulator(demo_scenario(), throttling=False)
    async with SimulatorServer(simulator) as server:
        http: httpx.AsyncClient = make_http_client(timeout=2.0)
        metrics = SelfMetrics()
        client = VpcClient(
            http,
            StaticCredentialsProvider(
                "default", Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
            ),
            "cn-hangzhou",
            budgets=RateBudgets(share=1.0, sleep=no_sleep),
            metrics=metrics,
            endpoint=server.url,
            retry=RetryPolicy(max_retries=2),
            sleep=no_sleep,
        )
        clock = FakeClock()
        fleet = Fleet(Exposition())
        keys = [GatewayKey(TARGET, "cn-hangzhou", g) for g in GATEWAYS]
        fleet.configure_target(TargetRecord(TARGET, interval=60.0, effective_interval=60.0), keys)
        try:
            yield Rig(simulator, client, Poller(fleet, metrics, clock), fleet, metrics, clock)
        finally:
            await http.aclose()


async def test_a_diagnosis_is_a_successful_poll_with_item_series(rig: Rig) -> None:
    await rig.poll("vpn-hz1healthy")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 1
    assert rig.value("aliyun_vpn_diagnose_available", vpn_gateway_id="vpn-hz1healthy") == 1
    assert (
        rig.value(
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz1healthy",
            item="VpnRouteQuota",
            level="normal",
        )
        == 1
    )
    assert (
        rig.value("aliyun_vpn_poll_last_success_timestamp_seconds", vpn_gateway_id="vpn-hz1healthy")
        == rig.clock.wall
    )


async def test_no_diagnosis_yet_is_success_with_available_zero(rig: Rig) -> None:
    await rig.poll("vpn-hz4nodiag")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz4nodiag") == 1
    assert rig.value("aliyun_vpn_diagnose_available", vpn_gateway_id="vpn-hz4nodiag") == 0
    assert rig.value("aliyun_vpn_diagnose_running", vpn_gateway_id="vpn-hz4nodiag") == 0


@pytest.mark.parametrize(
    "code", ["IncorrectStatus.DiagnoseTimeout", "IncorrectStatus.VpnConnectionDeleted"]
)
async def test_failed_diagnosis_is_success_and_keeps_previous_data(rig: Rig, code: str) -> None:
    await rig.poll("vpn-hz2quota")
    rig.simulator.faults.add(Fault.error(code, status=400, action=ACTION, gateway="vpn-hz2quota"))
    rig.clock.advance(60)
    await rig.poll("vpn-hz2quota")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 1
    assert (
        rig.value(
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz2quota",
            item="VpnIPsecQuota",
            level="error",
        )
        == 1
    )
    assert rig.failures(code) == 1


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.error("ServiceUnavailable", status=503, action=ACTION), "ServiceUnavailable"),
        (Fault.error("InternalError", status=500, action=ACTION), "InternalError"),
        (Fault.throttle(action=ACTION), "Throttling.User"),
        (
            Fault.error("VpnGateway.Configuring", status=400, action=ACTION),
            "VpnGateway.Configuring",
        ),
        (Fault.error("Forbidden", status=403, action=ACTION), "Forbidden"),
        (Fault.truncated_json(action=ACTION), "InvalidResponse"),
        (Fault.html(status=502, action=ACTION), "InvalidResponse"),
        (Fault.reset(action=ACTION), "NetworkError"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_failure_is_poll_success_zero_and_keeps_last_good_values(
    rig: Rig, fault: Fault, code: str
) -> None:
    await rig.poll("vpn-hz2quota")
    rig.simulator.faults.add(fault)
    rig.clock.advance(60)
    await rig.poll("vpn-hz2quota")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 0
    assert (
        rig.value("aliyun_vpn_quota_used", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota")
        is not None
    )
    assert (
        rig.value("aliyun_vpn_poll_last_success_timestamp_seconds", vpn_gateway_id="vpn-hz2quota")
        == rig.clock.wall - 60
    )
    assert rig.failures(code) >= 1


async def test_gateway_that_does_not_exist_is_a_failed_poll(rig: Rig) -> None:
    await rig.poll("vpn-nosuchgw")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-nosuchgw") == 0
    assert rig.failures("InvalidVpnGatewayInstanceId.NotFound") == 1


async def test_one_gateways_failure_leaves_another_untouched(rig: Rig) -> None:
    await rig.poll("vpn-hz1healthy")
    await rig.poll("vpn-hz2quota")
    before = [line for line in rig.text().splitlines() if "vpn-hz1healthy" in line]
    rig.simulator.faults.add(
        Fault.error("InternalError", status=500, action=ACTION, gateway="vpn-hz2quota")
    )
    await rig.poll("vpn-hz2quota")
    after = [line for line in rig.text().splitlines() if "vpn-hz1healthy" in line]
    assert before == after
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 0


async def test_with_stale_after_set_item_series_are_dropped_once_old(rig: Rig) -> None:
    rig.fleet.configure_target(
        TargetRecord(TARGET, interval=60.0, effective_interval=60.0),
        [rig.key(g) for g in GATEWAYS],
        stale_after=180.0,  # the operator opted in to vanishing series
    )
    await rig.poll("vpn-hz2quota")
    rig.simulator.faults.add(Fault.error("InternalError", status=500, action=ACTION))
    rig.clock.advance(120)
    await rig.poll("vpn-hz2quota")
    rig.fleet.sweep(rig.clock.time())
    assert (
        rig.value("aliyun_vpn_quota_used", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota")
        is not None
    )
    rig.clock.advance(61)  # 181 s after the last good poll, stale_after is 180 s
    rig.fleet.sweep(rig.clock.time())
    assert (
        rig.value("aliyun_vpn_quota_used", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota")
        is None
    )
    assert (
        rig.value(
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz2quota",
            item="VpnIPsecQuota",
            level="error",
        )
        is None
    )
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 0


async def test_unreadable_description_is_counted_and_keeps_the_level(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.simulator.faults.add(
        Fault.bad_description(DescriptionMode.GARBAGE, item="VpnIPsecQuota", action=ACTION)
    )
    with caplog.at_level(logging.WARNING):
        await rig.poll("vpn-hz2quota")
        await rig.poll("vpn-hz2quota")
    assert (
        rig.metrics.registry.get_sample_value(
            "aliyun_vpn_description_parse_errors_total", {"item": "VpnIPsecQuota"}
        )
        == 2
    )
    assert (
        rig.value(
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz2quota",
            item="VpnIPsecQuota",
            level="error",
        )
        == 1
    )
    assert (
        rig.value("aliyun_vpn_quota_used", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota")
        is None
    )
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 1
    logged = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(logged) == 1, "logged once per change, not once per poll"
    assert logged[0].fields["item"] == "VpnIPsecQuota"  # type: ignore[attr-defined]
    assert logged[0].fields["request_id"]  # type: ignore[attr-defined]


async def test_failure_is_logged_once_per_incident_and_recovery_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    fault = rig.simulator.faults.add(Fault.error("InternalError", status=500, action=ACTION))
    with caplog.at_level(logging.INFO, logger="exporter.collect.poller"):
        for _ in range(3):
            await rig.poll("vpn-hz1healthy")
        rig.simulator.faults.remove(fault.id)
        await rig.poll("vpn-hz1healthy")
        await rig.poll("vpn-hz1healthy")
    messages = [r.getMessage() for r in caplog.records if r.name == "exporter.collect.poller"]
    assert len([m for m in messages if m.startswith("poll failed")]) == 1
    assert messages.count("poll recovered") == 1
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 1


async def test_retried_throttling_that_recovers_is_a_successful_poll(rig: Rig) -> None:
    rig.simulator.faults.add(Fault.throttle(action=ACTION, times=1))
    await rig.poll("vpn-hz1healthy")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 1
    assert rig.failures("Throttling.User") == 1
    assert (
        rig.metrics.registry.get_sample_value("aliyun_vpn_api_requests_total", {"action": ACTION})
        == 2
    )


@pytest.mark.parametrize("code", ["MissingRegionId", "MissingParameter", "param_error"])
async def test_a_missing_parameter_or_param_error_is_our_bug_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture, code: str
) -> None:
    rig.simulator.faults.add(Fault.error(code, status=400, action=ACTION))
    with caplog.at_level(logging.WARNING, logger="exporter.collect.poller"):
        await rig.poll("vpn-hz1healthy")
        await rig.poll("vpn-hz1healthy")
    assert rig.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 0
    assert rig.failures(code) == 2, "a documented code is its own label, never retried"
    bugs = [r for r in caplog.records if "a bug, please report it" in r.getMessage()]
    assert len(bugs) == 1


async def test_missing_name_codes_of_parameters_never_sent_are_labelled_other(rig: Rig) -> None:
    rig.simulator.faults.add(Fault.error("MissingFooBar", status=400, action=ACTION))
    await rig.poll("vpn-hz1healthy")
    assert (rig.failures("MissingFooBar"), rig.failures("other")) == (0, 1)


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        ("SignatureDoesNotMatch", 400, "the AccessKey secret is wrong"),
        ("InvalidAccessKeyId.NotFound", 404, "the AccessKey ID does not exist"),
        ("InvalidAccessKeyId.Inactive", 400, "the AccessKey is disabled"),
        ("Forbidden.RAM", 403, f"lack the RAM action vpc:{ACTION}: attach deploy/ram-policy.json"),
    ],
)
async def test_an_auth_failure_says_what_to_do_about_it(
    rig: Rig, caplog: pytest.LogCaptureFixture, code: str, status: int, says: str
) -> None:
    rig.simulator.faults.add(Fault.error(code, status=status, action=ACTION))
    with caplog.at_level(logging.WARNING, logger="exporter.collect.poller"):
        await rig.poll("vpn-hz1healthy")
    (message,) = [r.getMessage() for r in caplog.records if r.name == "exporter.collect.poller"]
    assert says in message and code in message
    if code != "Forbidden.RAM":
        assert "ram-policy" not in message, "only a permission error points at the RAM policy"


def drift_count(rig: Rig, item: str, kind: str) -> float:
    return (
        rig.metrics.registry.get_sample_value(
            "aliyun_vpn_description_shape_drift_total", {"item": item, "kind": kind}
        )
        or 0.0
    )


def parse_error_count(rig: Rig, item: str) -> float:
    return (
        rig.metrics.registry.get_sample_value(
            "aliyun_vpn_description_parse_errors_total", {"item": item}
        )
        or 0.0
    )


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (DescriptionMode.NUMBERS_AS_STRINGS, "number_as_string"),
        (DescriptionMode.DOUBLY_ENCODED, "double_encoded"),
        (DescriptionMode.NOT_A_STRING, "not_a_string"),
    ],
)
async def test_a_description_read_despite_its_form_is_drift_not_a_parse_error(
    rig: Rig, caplog: pytest.LogCaptureFixture, mode: DescriptionMode, kind: str
) -> None:
    rig.simulator.faults.add(Fault.bad_description(mode, item="VpnIPsecQuota", action=ACTION))
    with caplog.at_level(logging.WARNING, logger="exporter.collect.poller"):
        await rig.poll("vpn-hz2quota")
        await rig.poll("vpn-hz2quota")
    assert drift_count(rig, "VpnIPsecQuota", kind) == 2
    assert parse_error_count(rig, "VpnIPsecQuota") == 0
    # read as well as the documented form
    assert rig.value("aliyun_vpn_quota_limit", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota")
    shapes = [r for r in caplog.records if "unexpected form" in r.getMessage()]
    assert len(shapes) == 1, "each new shape is logged once"
    fields = shapes[0].fields  # type: ignore[attr-defined]
    assert (fields["item"], fields["shape"].split("(")[0]) == ("VpnIPsecQuota", kind)
    assert "97" not in fields["shape"] and "100" not in fields["shape"], "never values"


async def test_an_unreadable_description_is_a_parse_error_and_no_drift(rig: Rig) -> None:
    rig.simulator.faults.add(
        Fault.bad_description(DescriptionMode.GARBAGE, item="VpnIPsecQuota", action=ACTION)
    )
    await rig.poll("vpn-hz2quota")
    assert parse_error_count(rig, "VpnIPsecQuota") == 1
    total_drift = sum(
        sample.value
        for metric in rig.metrics.registry.collect()
        if metric.name == "aliyun_vpn_description_shape_drift"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["item"] == "VpnIPsecQuota"
    )
    assert total_drift == 0


async def test_the_demo_fleets_descriptions_have_no_drift(rig: Rig) -> None:
    for gateway in GATEWAYS:
        await rig.poll(gateway)
    assert not [
        sample
        for metric in rig.metrics.registry.collect()
        if metric.name == "aliyun_vpn_description_shape_drift"
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]
