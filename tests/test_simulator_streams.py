"""The faults that go wrong mid-body (`exporter.simulator.streams`), over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from exporter.simulator.faults import Fault
from exporter.simulator.scenario import Scenario, demo_scenario
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import Served

clock, served = wire.clock, wire.served

HZ1 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}
GET = "GetVpnGatewayDiagnoseResult"


@pytest.fixture
def scenario() -> Scenario:
    return demo_scenario().model_copy(update={"faults": []})


async def test_reset_mid_body_sends_the_headers_and_half_the_body_then_resets(
    served: Served,
) -> None:
    served.simulator.faults.add(Fault.reset_mid_body(action=GET))
    request = served.client.v3(GET, HZ1)
    response = await served.client.http.send(request, stream=True)
    try:
        assert response.status_code == 200
        declared = int(response.headers["content-length"])
        received = b""
        with pytest.raises(httpx.TransportError):
            async for chunk in response.aiter_raw():
                received += chunk
        assert 0 < len(received) < declared
    finally:
        await response.aclose()
    served.simulator.faults.clear()
    assert (await served.client.call(GET, **HZ1)).is_success  # the server goes on


async def test_huge_body_streams_the_size_asked_without_a_length(served: Served) -> None:
    served.simulator.faults.add(Fault.huge_body(3_000_000, action=GET))
    response = await served.client.call(GET, **HZ1)
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert len(response.content) == 3_000_000
    assert response.json()["Padding"].startswith("x")


async def test_huge_body_stops_when_the_client_goes(served: Served) -> None:
    served.simulator.faults.add(Fault.huge_body(action=GET))  # 50 MB
    response = await served.client.http.send(served.client.v3(GET, HZ1), stream=True)
    async for _ in response.aiter_raw():
        break
    await response.aclose()
    served.simulator.faults.clear()
    assert (await served.client.ok(GET, **HZ1))["VpnGatewayId"] == "vpn-hz1healthy"


async def test_drip_sends_a_byte_at_a_time_and_never_finishes(served: Served) -> None:
    served.simulator.faults.add(Fault.drip(0.01, action=GET))
    response = await served.client.http.send(served.client.v3(GET, HZ1), stream=True)
    try:
        assert response.status_code == 200
        received = b""
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                async for chunk in response.aiter_raw():
                    received += chunk
        assert len(received) >= 3  # bytes kept coming, the body never ended
    finally:
        await response.aclose()


async def test_control_api_installs_the_stream_faults(served: Served) -> None:
    for fault in ({"kind": "drip", "seconds": 0.5}, {"kind": "huge_body", "size": 10}):
        answer = await served.client.http.post(f"{served.server.url}/_simulator/faults", json=fault)
        assert answer.status_code == 201, answer.text
    refused = await served.client.http.post(
        f"{served.server.url}/_simulator/faults", json={"kind": "drip", "size": 10}
    )
    assert refused.status_code == 422
