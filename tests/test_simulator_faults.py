"""Fault injection over real HTTP: each fault kind, its scope, and switching it at run time."""

from __future__ import annotations

import json

import httpx
import pytest

from exporter.simulator.faults import DescriptionMode, Fault
from exporter.simulator.scenario import Scenario, demo_scenario
from tests import test_simulator_wire as wire
from tests.test_simulator_wire import Served

clock, served = wire.clock, wire.served

HZ1 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}
HZ2 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz2quota"}
GET = "GetVpnGatewayDiagnoseResult"


@pytest.fixture
def scenario() -> Scenario:
    """The demo fleet without its own fault: each test's faults are the only ones."""
    return demo_scenario().model_copy(update={"faults": []})


def with_timeout(request: httpx.Request, seconds: float) -> httpx.Request:
    request.extensions["timeout"] = httpx.Timeout(seconds).as_dict()
    return request


async def test_latency_fault_delays_the_answer_past_a_short_client_timeout(served: Served) -> None:
    served.simulator.faults.add(Fault.latency(0.5, action=GET))
    with pytest.raises(httpx.ReadTimeout):
        await served.client.http.send(with_timeout(served.client.v3(GET, HZ1), 0.1))


async def test_latency_fault_still_answers_normally(served: Served) -> None:
    served.simulator.faults.add(Fault.latency(0.05, action=GET))
    assert (await served.client.ok(GET, **HZ1))["VpnGatewayId"] == "vpn-hz1healthy"
    assert served.simulator.requests[-1].faults == ("latency",)


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalError"), (502, "ServiceUnavailable"), (503, "ServiceUnavailable")],
)
async def test_server_error_fault_answers_the_error_body(
    served: Served, status: int, code: str
) -> None:
    served.simulator.faults.add(Fault.error(status=status))
    response = await served.client.call(GET, **HZ1)
    assert (response.status_code, response.json()["Code"]) == (status, code)
    assert set(response.json()) == {"RequestId", "HostId", "Code", "Message", "Recommend"}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("InvalidAccessKeyId.NotFound", 404),
        ("Forbidden", 403),
        ("VpnGateway.Configuring", 400),
        ("IncorrectStatus.DiagnoseTimeout", 400),
    ],
)
async def test_error_fault_answers_a_documented_code_with_its_status(
    served: Served, code: str, status: int
) -> None:
    served.simulator.faults.add(Fault.error(code))
    assert await served.client.error(GET, **HZ1) == (status, code)


async def test_forbidden_ram_fault_names_the_missing_ram_action(served: Served) -> None:
    served.simulator.faults.add(Fault.error("Forbidden.RAM"))
    response = await served.client.call(GET, **HZ1)
    assert (response.status_code, response.json()["Code"]) == (403, "Forbidden.RAM")
    assert response.json()["AccessDeniedDetail"]["AuthAction"] == f"vpc:{GET}"


async def test_throttle_fault_with_retry_after_sends_the_header(served: Served) -> None:
    served.simulator.faults.add(Fault.throttle(retry_after_ms=1500))
    response = await served.client.call(GET, **HZ1)
    assert (response.status_code, response.json()["Code"]) == (400, "Throttling.User")
    assert response.headers["x-acs-retry-after"] == "1500"


async def test_throttle_fault_without_retry_after_sends_no_header(served: Served) -> None:
    served.simulator.faults.add(Fault.throttle())
    response = await served.client.call(GET, **HZ1)
    assert response.json()["Code"] == "Throttling.User"
    assert "x-acs-retry-after" not in response.headers


async def test_timeout_fault_never_answers_within_the_client_timeout(served: Served) -> None:
    served.simulator.faults.add(Fault.timeout(action=GET))
    with pytest.raises(httpx.ReadTimeout):
        await served.client.http.send(with_timeout(served.client.v3(GET, HZ1), 0.2))


async def test_timeout_fault_ends_with_the_connection_dropped(served: Served) -> None:
    served.simulator.faults.add(Fault.timeout(0.05, action=GET))
    with pytest.raises(httpx.TransportError) as raised:
        await served.client.call(GET, **HZ1)
    assert not isinstance(raised.value, httpx.TimeoutException)


async def test_reset_fault_drops_the_connection_without_an_answer(served: Served) -> None:
    served.simulator.faults.add(Fault.reset(action=GET))
    with pytest.raises(httpx.TransportError) as raised:
        await served.client.call(GET, **HZ1)
    assert not isinstance(raised.value, httpx.TimeoutException)
    assert served.simulator.requests[-1].status is None
    assert (await served.client.call("DescribeVpnGateways", RegionId="cn-hangzhou")).is_success


async def test_truncated_json_fault_answers_200_with_unparsable_json(served: Served) -> None:
    served.simulator.faults.add(Fault.truncated_json(action=GET))
    response = await served.client.call(GET, **HZ1)
    assert response.status_code == 200
    assert response.text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_html_fault_answers_a_proxys_error_page(served: Served) -> None:
    served.simulator.faults.add(Fault.html())
    response = await served.client.call(GET, **HZ1)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


def description(body: dict[str, object], item: str) -> object:
    results = body["DiagnoseResult"]
    assert isinstance(results, list)
    return next(r["DiagnoseResultDescription"] for r in results if r["DiagnoseName"] == item)


async def test_bad_description_garbage_is_not_json(served: Served) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.GARBAGE))
    text = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(text, str)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_bad_description_wrong_type_is_json_but_not_an_object(served: Served) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.WRONG_TYPE))
    text = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(text, str)
    assert isinstance(json.loads(text), list)


async def test_bad_description_nested_garbage_keeps_keys_with_nonsense_values(
    served: Served,
) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.NESTED_GARBAGE))
    text = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(text, str)
    values = json.loads(text)
    assert set(values) == {"quotaName", "quantity", "used"}
    assert not any(isinstance(v, int) and v >= 0 for v in values.values())


async def test_bad_description_doubly_encoded_is_a_json_string_of_the_object(
    served: Served,
) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.DOUBLY_ENCODED))
    text = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(text, str)
    inner = json.loads(text)
    assert isinstance(inner, str)
    assert json.loads(inner)["quantity"] == 100


async def test_bad_description_numbers_as_strings(served: Served) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.NUMBERS_AS_STRINGS))
    text = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(text, str)
    assert json.loads(text)["quantity"] == "100"


async def test_bad_description_not_a_string_sends_an_object(served: Served) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.NOT_A_STRING))
    value = description(await served.client.ok(GET, **HZ2), "VpnRouteQuota")
    assert isinstance(value, dict)
    assert value["quantity"] == 100


async def test_bad_description_empty_is_an_empty_string(served: Served) -> None:
    served.simulator.faults.add(Fault.bad_description(DescriptionMode.EMPTY))
    assert description(await served.client.ok(GET, **HZ2), "VpnRouteQuota") == ""


async def test_bad_description_of_one_item_leaves_the_others_intact(served: Served) -> None:
    served.simulator.faults.add(
        Fault.bad_description(DescriptionMode.GARBAGE, item="VcoPrivateConnectivity")
    )
    body = await served.client.ok(GET, **HZ2)
    assert json.loads(str(description(body, "VpnRouteQuota")))["quantity"] == 100
    with pytest.raises(json.JSONDecodeError):
        json.loads(str(description(body, "VcoPrivateConnectivity")))


async def test_never_finish_fault_shows_the_latest_diagnosis_running(served: Served) -> None:
    served.simulator.faults.add(Fault.never_finish(action=GET))
    body = await served.client.ok(GET, **HZ1)
    assert (body["FinishedCount"], body["TotalCount"]) == (6, 7)
    assert "FinishTime" not in body and len(body["DiagnoseResult"]) == 6


async def test_never_finish_fault_on_start_leaves_that_diagnosis_running_for_good(
    served: Served,
) -> None:
    served.simulator.faults.add(Fault.never_finish(action="DiagnoseVpnGateway"))
    started = await served.client.ok(
        "DiagnoseVpnGateway", **HZ1, ResourceType="IPsec", ResourceId="vco-hz1healthy"
    )
    served.clock.advance(24 * 3600)
    body = await served.client.ok(GET, RegionId="cn-hangzhou", DiagnoseId=started["DiagnoseId"])
    assert body["FinishedCount"] == 6


# Scope and switching ---------------------------------------------------------------------


async def test_fault_scoped_to_a_gateway_spares_the_others(served: Served) -> None:
    served.simulator.faults.add(Fault.error(status=503, gateway="vpn-hz2quota"))
    assert (await served.client.call(GET, **HZ2)).status_code == 503
    assert (await served.client.call(GET, **HZ1)).status_code == 200


async def test_fault_scoped_to_an_action_spares_the_others(served: Served) -> None:
    served.simulator.faults.add(Fault.error(status=500, action="DescribeVpnGateways"))
    assert (
        await served.client.call("DescribeVpnGateways", RegionId="cn-hangzhou")
    ).status_code == 500
    assert (await served.client.call(GET, **HZ1)).status_code == 200


async def test_gateway_scoped_fault_matches_calls_by_diagnose_id(served: Served) -> None:
    latest = await served.client.ok(GET, **HZ2)
    served.simulator.faults.add(Fault.error(status=500, gateway="vpn-hz2quota"))
    response = await served.client.call(
        GET, RegionId="cn-hangzhou", DiagnoseId=latest["DiagnoseId"]
    )
    assert response.status_code == 500


async def test_gateway_scoped_fault_matches_calls_by_connection_id(served: Served) -> None:
    served.simulator.faults.add(Fault.error(status=500, gateway="vpn-hz2quota"))
    response = await served.client.call(
        "DescribeVpnConnections", RegionId="cn-hangzhou", VpnConnectionId="vco-hz2quota"
    )
    assert response.status_code == 500


async def test_fault_every_third_call_fires_on_calls_three_and_six(served: Served) -> None:
    served.simulator.faults.add(Fault.error(status=503, every=3))
    statuses = [(await served.client.call(GET, **HZ1)).status_code for _ in range(6)]
    assert statuses == [200, 200, 503, 200, 200, 503]


async def test_fault_limited_to_two_times_is_gone_after_firing_twice(served: Served) -> None:
    installed = served.simulator.faults.add(Fault.error(status=503, times=2))
    statuses = [(await served.client.call(GET, **HZ1)).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert installed.fired == 2
    assert served.simulator.faults.installed() == []


async def test_removed_fault_stops_firing(served: Served) -> None:
    installed = served.simulator.faults.add(Fault.error(status=503))
    assert (await served.client.call(GET, **HZ1)).status_code == 503
    assert served.simulator.faults.remove(installed.id)
    assert (await served.client.call(GET, **HZ1)).status_code == 200


async def test_faults_fire_only_after_the_signature_is_verified(served: Served) -> None:
    served.simulator.faults.add(Fault.error(status=503))
    served.client.secret = "wrong"
    assert await served.client.error(GET, **HZ1) == (400, "SignatureDoesNotMatch")


def test_fault_with_a_setting_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_after_ms"):
        Fault(kind="latency", retry_after_ms=5)


@pytest.mark.parametrize("scenario", [demo_scenario()], ids=["demo"])
async def test_demo_throttles_every_second_diagnosis_call_of_sg2lossy(served: Served) -> None:
    sg2 = {"RegionId": "ap-southeast-1", "VpnGatewayId": "vpn-sg2lossy"}
    codes = []
    for _ in range(8):
        response = await served.client.call(GET, **sg2)
        codes.append(response.json().get("Code"))
    assert codes == [None, "Throttling.User"] * 4


# The control API ----------------------------------------------------------------------


async def test_control_api_installs_a_fault_from_json(served: Served) -> None:
    http, base = served.client.http, served.server.url
    created = await http.post(
        f"{base}/_simulator/faults", json={"kind": "error", "status": 503, "action": GET}
    )
    assert created.status_code == 201
    assert (await served.client.call(GET, **HZ1)).status_code == 503
    (listed,) = (await http.get(f"{base}/_simulator/faults")).json()
    assert (listed["id"], listed["kind"], listed["fired"]) == (created.json()["id"], "error", 1)


async def test_control_api_removes_one_fault_or_all(served: Served) -> None:
    http, base = served.client.http, served.server.url
    first = (await http.post(f"{base}/_simulator/faults", json={"kind": "reset"})).json()
    await http.post(f"{base}/_simulator/faults", json={"kind": "html"})
    assert (await http.delete(f"{base}/_simulator/faults/{first['id']}")).status_code == 204
    assert (await http.delete(f"{base}/_simulator/faults/{first['id']}")).status_code == 404
    assert [f["kind"] for f in (await http.get(f"{base}/_simulator/faults")).json()] == ["html"]
    assert (await http.delete(f"{base}/_simulator/faults")).status_code == 204
    assert (await http.get(f"{base}/_simulator/faults")).json() == []
    assert (await served.client.call(GET, **HZ1)).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [{"kind": "error", "colour": "red"}, {"kind": "meltdown"}, {"kind": "latency", "every": 0}],
    ids=["unknown-field", "unknown-kind", "every-zero"],
)
async def test_control_api_refuses_an_invalid_fault(
    served: Served, payload: dict[str, object]
) -> None:
    response = await served.client.http.post(f"{served.server.url}/_simulator/faults", json=payload)
    assert response.status_code == 422
    assert served.simulator.faults.installed() == []


async def test_control_api_reports_calls_and_failures(served: Served) -> None:
    await served.client.call(GET, **HZ1)
    await served.client.call(GET, RegionId="cn-hangzhou")
    stats = (await served.client.http.get(f"{served.server.url}/_simulator/stats")).json()
    assert stats == {"calls": {GET: 2}, "failures": {GET: {"MissingParam.DiagnoseInfo": 1}}}
