"""A host clock off the API's: the real codes, a clock diagnosis, the measured offset.

The simulator runs on a clock 20 minutes behind the host's, so the exporter's requests
(signed with the host's time) are refused as the real gateway refuses them
(`InvalidTimeStamp.Expired`, HTTP 400), and every answer's `Date` header carries the
simulator's time.
"""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import generate_latest

from exporter.cloud.errors import CloudError, failure_code
from exporter.simulator.clock import ManualClock
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.exporter_rig import configured, polled_once, running, scenario

SKEW = 20 * 60
GATEWAY = {
    "id": "vpn-skew1",
    "name": "skew1",
    "region_id": "cn-hangzhou",
    "vpc_id": "vpc-skew1",
}
TARGETS = [{"region_id": "cn-hangzhou", "gateways": ["vpn-skew1"]}]


@pytest.fixture
def api_clock() -> ManualClock:
    """The simulated API's clock: the host's time minus `SKEW`."""
    return ManualClock(time.time() - SKEW)


async def test_skewed_host_clock_is_a_clock_problem_with_its_offset_not_a_credentials_one(
    api_clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    simulator = Simulator(scenario([GATEWAY]), clock=api_clock, throttling=False)
    with caplog.at_level(logging.INFO):
        async with running(simulator, configured(TARGETS)) as run:
            await polled_once(run)
            text = await run.scrape()
            assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-skew1") == 0
            offset = float(
                next(
                    line.split()[1]
                    for line in text.splitlines()
                    if line.startswith("aliyun_vpn_clock_offset_seconds ")
                )
            )
            # The Date header has a resolution of one second; the answer takes some time.
            assert SKEW - 5 <= offset <= SKEW + 5
            assert (
                'aliyun_vpn_api_request_failures_total{action="GetVpnGatewayDiagnoseResult",'
                'code="InvalidTimeStamp.Expired"}' in text
            )
            # a clock problem is not a credentials problem
            assert 'aliyun_vpn_credentials_success{profile="default"} 1.0' in text
            calls = [r for r in simulator.requests if r.action == "GetVpnGatewayDiagnoseResult"]
            assert [r.code for r in calls] == ["InvalidTimeStamp.Expired"], "never retried"
    clock_lines = [
        r for r in caplog.records if "the host clock is off by about 20 minutes" in r.getMessage()
    ]
    polls = [r for r in clock_lines if r.name == "exporter.collect.poller"]
    assert len(polls) == 1, "logged once, not once per poll"
    assert "ahead of the API's Date header" in polls[0].getMessage()
    # the listings name the clock too
    assert [r for r in clock_lines if r.name == "exporter.collect.inventory"]
    assert not [r for r in caplog.records if "credentials need the RAM action" in r.getMessage()]


async def test_clock_offset_is_measured_on_successful_answers_too(api_clock: ManualClock) -> None:
    api_clock.now = time.time() - 45  # within the API's 15 minutes, past the alert's 30 s
    simulator = Simulator(scenario([GATEWAY]), clock=api_clock, throttling=False)
    async with running(simulator, configured(TARGETS)) as run:
        await polled_once(run)
        assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-skew1") == 1
        text = await run.scrape()
    (line,) = [x for x in text.splitlines() if x.startswith("aliyun_vpn_clock_offset_seconds ")]
    assert 40 <= float(line.split()[1]) <= 50


@pytest.mark.parametrize(
    "code", ["InvalidTimeStamp.Expired", "InvalidTimeStamp.Format", "IllegalTimestamp"]
)
def test_clock_codes_are_documented_labels_and_never_credential_failures(code: str) -> None:
    error = CloudError("GetVpnGatewayDiagnoseResult", "refused", status=400, code=code)
    assert error.clock_problem
    assert not error.auth_failure
    assert not error.credentials_rejected
    assert not error.transient
    assert failure_code(error) == code


def test_clock_offset_is_absent_until_an_answer_measures_it() -> None:
    metrics = SelfMetrics()
    assert b"aliyun_vpn_clock_offset_seconds" not in generate_latest(metrics.registry)
    metrics.set_clock_offset(-2.0)
    assert b"aliyun_vpn_clock_offset_seconds -2.0" in generate_latest(metrics.registry)
