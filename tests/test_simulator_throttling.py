"""Throttling: published limits per (account, region, action) over a sliding minute."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from exporter.simulator.clock import ManualClock
from exporter.simulator.scenario import KeyPair, Scenario, demo_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.simulator.throttle import DEFAULT_LIMITS, RateLimiter
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import START, Served, SignedClient

clock, served = wire.clock, wire.served

GET = "GetVpnGatewayDiagnoseResult"
HZ1 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}
SG1 = {"RegionId": "ap-southeast-1", "VpnGatewayId": "vpn-sg1inconsistent"}


def limited(**limits: int) -> Scenario:
    """The demo fleet with some limits lowered and without its own throttling fault."""
    return demo_scenario().model_copy(update={"rate_limits": limits, "faults": []})


@pytest.fixture
def scenario() -> Scenario:
    return limited(GetVpnGatewayDiagnoseResult=3)


async def statuses(served: Served, count: int, **params: str) -> list[int]:
    return [(await served.client.call(GET, **params)).status_code for _ in range(count)]


def test_limits_are_the_published_ones_and_the_labelled_assumptions() -> None:
    assert DEFAULT_LIMITS == {
        "GetVpnGatewayDiagnoseResult": 120,
        "DescribeVpnConnections": 600,
        "DescribeVpnConnection": 600,
        "DescribeVpnGateway": 600,
        "DescribeVcoRouteEntries": 600,
        "DeleteVcoRouteEntry": 60,
        "DiagnoseVpnGateway": 60,
        "CreateVcoRouteEntry": 60,
        "DescribeVpnGateways": 600,
    }


@pytest.mark.parametrize("scenario", [limited()], ids=["published-limits"])
async def test_the_121st_diagnosis_result_within_a_minute_is_throttled(served: Served) -> None:
    assert await statuses(served, 120, **HZ1) == [200] * 120
    response = await served.client.call(GET, **HZ1)
    assert (response.status_code, response.json()["Code"]) == (400, "Throttling.User")


async def test_throttled_answer_says_in_milliseconds_when_a_call_frees(served: Served) -> None:
    await statuses(served, 1, **HZ1)
    served.clock.advance(20)
    await statuses(served, 2, **HZ1)
    response = await served.client.call(GET, **HZ1)
    assert response.json()["Code"] == "Throttling.User"
    assert response.headers["x-acs-retry-after"] == "40000"


async def test_a_call_is_admitted_again_once_the_oldest_leaves_the_window(served: Served) -> None:
    await statuses(served, 1, **HZ1)
    served.clock.advance(30)
    await statuses(served, 2, **HZ1)
    served.clock.advance(30)
    assert await statuses(served, 2, **HZ1) == [200, 400]


async def test_refused_calls_do_not_use_up_the_budget(served: Served) -> None:
    await statuses(served, 3, **HZ1)
    assert await statuses(served, 50, **HZ1) == [400] * 50
    served.clock.advance(60)
    assert await statuses(served, 3, **HZ1) == [200] * 3


async def test_each_region_has_its_own_budget(served: Served) -> None:
    await statuses(served, 3, **HZ1)
    assert await statuses(served, 1, **SG1) == [200]


async def test_each_action_has_its_own_budget(served: Served) -> None:
    await statuses(served, 3, **HZ1)
    response = await served.client.call("DescribeVpnGateways", RegionId="cn-hangzhou")
    assert response.status_code == 200


async def test_each_account_has_its_own_budget_shared_by_its_keys(served: Served) -> None:
    served.simulator.add_key_pair("other-1", "s1", account_id="1234")
    served.simulator.add_key_pair("other-2", "s2", account_id="1234")
    await statuses(served, 3, **HZ1)
    served.client.key_id, served.client.secret = "other-1", "s1"
    assert await statuses(served, 2, **HZ1) == [200, 200]
    served.client.key_id, served.client.secret = "other-2", "s2"
    assert await statuses(served, 2, **HZ1) == [200, 400]


@pytest.mark.parametrize(
    "scenario",
    [limited(GetVpnGatewayDiagnoseResult=1).model_copy(update={"retry_after_header": False})],
    ids=["no-retry-after"],
)
async def test_scenario_can_throttle_without_the_retry_after_header(served: Served) -> None:
    await statuses(served, 1, **HZ1)
    response = await served.client.call(GET, **HZ1)
    assert response.json()["Code"] == "Throttling.User"
    assert "x-acs-retry-after" not in response.headers


@contextlib.asynccontextmanager
async def serving(simulator: Simulator, clock: ManualClock) -> AsyncIterator[SignedClient]:
    async with (
        SimulatorServer(simulator) as server,
        httpx.AsyncClient(verify=False) as http,
    ):
        yield SignedClient(http, server, clock)


async def test_throttling_off_never_throttles(clock: ManualClock) -> None:
    simulator = Simulator(limited(GetVpnGatewayDiagnoseResult=1), clock=clock, throttling=False)
    async with serving(simulator, clock) as client:
        for _ in range(5):
            assert (await client.call(GET, **HZ1)).status_code == 200


async def test_throttling_limits_given_to_the_simulator_override_the_scenarios(
    clock: ManualClock,
) -> None:
    simulator = Simulator(
        limited(GetVpnGatewayDiagnoseResult=1),
        clock=clock,
        throttling={"GetVpnGatewayDiagnoseResult": 2},
    )
    async with serving(simulator, clock) as client:
        codes = [(await client.call(GET, **HZ1)).status_code for _ in range(3)]
        assert codes == [200, 200, 400]


def test_an_action_without_a_limit_is_never_throttled() -> None:
    limiter = RateLimiter({}, ManualClock(START))
    assert all(limiter.acquire("acct", "cn-hangzhou", "Anything") is None for _ in range(1000))


def test_key_pairs_of_one_account_are_a_scenario_setting() -> None:
    pair = KeyPair.model_validate(
        {"access_key_id": "a", "access_key_secret": "b", "account_id": "1234"}
    )
    assert pair.account_id == "1234"
    assert "b" not in repr(pair)
