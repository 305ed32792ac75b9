"""The simulator's wire protocol: signatures verified, tampering rejected, over real HTTP.

Requests the simulator must accept are signed by the official SDK's own functions
(`alibabacloud_tea_openapi.utils.Utils.get_authorization`, `get_rpcsignature`): the
simulator verifies with `exporter.cloud.signing`, so a drift of that module fails them.
Tampering cases sign with `exporter.cloud.signing` (`signer = "own"`) and then change the
request. `SignedClient` and the `served` fixture are shared with the other simulator tests.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx
import pytest
from alibabacloud_tea_openapi.utils import Utils  # type: ignore[import-untyped]
from darabonba.request import DaraRequest  # type: ignore[import-untyped]

from exporter.cloud import signing
from exporter.simulator.clock import ManualClock, format_api_time
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    Scenario,
    demo_scenario,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator

START = 1_800_000_000.0
"""2027-01-15T08:00:00Z: simulator tests run on a manual clock starting here."""


Signer = Literal["sdk", "own"]


def wire_query(pairs: Mapping[str, str]) -> str:
    """The query as sent: RFC 3986 percent-encoding, by the standard library."""
    return urlencode(list(pairs.items()), quote_via=quote, safe="~")


class SignedClient:
    """Builds requests signed like the official SDK's (V3 or V1) for the simulator.

    `signer`: "sdk" signs with the official SDK's functions, "own" with
    `exporter.cloud.signing` (for requests tampered with after signing).
    """

    signer: Signer = "sdk"

    def __init__(
        self,
        http: httpx.AsyncClient,
        server: SimulatorServer,
        clock: ManualClock,
        *,
        key_id: str = DEMO_ACCESS_KEY_ID,
        secret: str = DEMO_ACCESS_KEY_SECRET,
        token: str | None = None,
    ) -> None:
        self.http, self.server, self.clock = http, server, clock
        self.key_id, self.secret, self.token = key_id, secret, token

    def v3(
        self,
        action: str,
        params: Mapping[str, str],
        *,
        method: str = "POST",
        date: float | None = None,
        nonce: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        unsigned: tuple[str, ...] = (),
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        """A V3-signed request; header names in `unsigned` are sent but left out of the
        signature; `extra_headers` replace or add headers before signing."""
        query = list(params.items())
        headers = {
            "host": self.server.endpoint,
            "x-acs-action": action,
            "x-acs-version": "2016-04-28",
            "x-acs-date": format_api_time(self.clock() if date is None else date),
            "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        }
        if self.token is not None:
            headers["x-acs-security-token"] = self.token
        if content_type is not None:
            headers["content-type"] = content_type
        headers.update(extra_headers or {})
        signed_names = [name for name in headers if name not in unsigned]
        payload_hash = headers["x-acs-content-sha256"]
        if self.signer == "sdk":
            sdk_request = DaraRequest()
            sdk_request.method = method
            sdk_request.pathname = "/"
            sdk_request.query = dict(query)
            sdk_request.headers = {name: headers[name] for name in signed_names}
            headers["authorization"] = Utils.get_authorization(
                sdk_request, "ACS3-HMAC-SHA256", payload_hash, self.key_id, self.secret
            )
        else:
            signed, signature = signing.v3_signature(
                self.secret, method, "/", query, headers, signed_names, payload_hash
            )
            headers["authorization"] = signing.v3_authorization(self.key_id, signed, signature)
        url = f"{self.server.url}/?{wire_query(dict(query))}"
        return self.http.build_request(method, url, headers=headers, content=body)

    def v1(
        self,
        action: str,
        params: Mapping[str, str],
        *,
        timestamp: float | None = None,
        nonce: str | None = None,
    ) -> httpx.Request:
        query = {
            **params,
            "Action": action,
            "Format": "json",
            "Version": "2016-04-28",
            "Timestamp": format_api_time(self.clock() if timestamp is None else timestamp),
            "SignatureNonce": nonce or uuid.uuid4().hex,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "AccessKeyId": self.key_id,
        }
        if self.token is not None:
            query["SecurityToken"] = self.token
        if self.signer == "sdk":
            query["Signature"] = Utils.get_rpcsignature(query, "POST", self.secret)
        else:
            query["Signature"] = signing.v1_signature(self.secret, "POST", query.items())
        url = f"{self.server.url}/?{wire_query(query)}"
        return self.http.build_request("POST", url)

    async def call(self, action: str, **params: str) -> httpx.Response:
        return await self.http.send(self.v3(action, params))

    async def ok(self, action: str, **params: str) -> dict[str, Any]:
        """Call and require HTTP 200; return the JSON body."""
        response = await self.call(action, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def error(self, action: str, **params: str) -> tuple[int, str]:
        """Call and require an error; return (HTTP status, Code)."""
        response = await self.call(action, **params)
        assert response.status_code >= 400, response.text
        return response.status_code, response.json()["Code"]


@dataclass
class Served:
    simulator: Simulator
    server: SimulatorServer
    clock: ManualClock
    client: SignedClient


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def scenario() -> Scenario:
    """The scenario `served` serves; override in a module or test to serve another."""
    return demo_scenario()


@pytest.fixture
async def served(scenario: Scenario, clock: ManualClock) -> AsyncIterator[Served]:
    """The simulator on a loopback port, on a manual clock, with throttling on."""
    simulator = Simulator(scenario, clock=clock)
    async with (
        SimulatorServer(simulator) as server,
        # plain HTTP on loopback: verify=False spares building a TLS context per test
        httpx.AsyncClient(timeout=10, verify=False) as http,
    ):
        yield Served(simulator, server, clock, SignedClient(http, server, clock))


HZ1 = {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["Code"]
    return code


async def send(served: Served, request: httpx.Request) -> httpx.Response:
    return await served.client.http.send(request)


# V3 ------------------------------------------------------------------------------------


async def test_v3_request_signed_per_facts_is_answered(served: Served) -> None:
    response = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    assert response.status_code == 200
    assert response.json()["VpnGatewayId"] == "vpn-hz1healthy"


async def test_v3_query_value_changed_after_signing_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.url = request.url.copy_set_param("VpnGatewayId", "vpn-hz2quota")
    response = await send(served, request)
    assert (response.status_code, code_of(response)) == (400, "SignatureDoesNotMatch")


async def test_v3_query_parameter_added_after_signing_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.url = request.url.copy_add_param("DiagnoseId", "vpndgn-x")
    assert code_of(await send(served, request)) == "SignatureDoesNotMatch"


async def test_v3_signed_header_changed_after_signing_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.headers["x-acs-signature-nonce"] = "another-nonce"
    assert code_of(await send(served, request)) == "SignatureDoesNotMatch"


async def test_v3_added_unsigned_x_acs_header_is_incomplete_signature(served: Served) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.headers["x-acs-extra"] = "smuggled"
    response = await send(served, request)
    assert (response.status_code, code_of(response)) == (400, "IncompleteSignature")


async def test_v3_unsigned_host_header_is_incomplete_signature(served: Served) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, unsigned=("host",))
    assert code_of(await send(served, request)) == "IncompleteSignature"


async def test_v3_unsigned_transport_headers_are_accepted(served: Served) -> None:
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.headers["Accept-Encoding"] = "gzip, deflate"
    request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    request.headers["User-Agent"] = "AlibabaCloud (Linux) Python/3.11"
    assert (await send(served, request)).status_code == 200


async def test_v3_date_more_than_fifteen_minutes_old_is_invalid_timestamp_expired(
    served: Served,
) -> None:
    stale = served.clock() - 15 * 60 - 1
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, date=stale)
    response = await send(served, request)
    assert (response.status_code, code_of(response)) == (400, "InvalidTimeStamp.Expired")
    assert response.json()["Message"] == "Specified time stamp or date value is expired."


async def test_v3_date_more_than_fifteen_minutes_ahead_is_invalid_timestamp_expired(
    served: Served,
) -> None:
    ahead = served.clock() + 15 * 60 + 1
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, date=ahead)
    assert code_of(await send(served, request)) == "InvalidTimeStamp.Expired"


async def test_v3_malformed_date_is_invalid_timestamp_format(served: Served) -> None:
    # signed with a date in another format, so only the date is wrong
    request = served.client.v3(
        "GetVpnGatewayDiagnoseResult", HZ1, extra_headers={"x-acs-date": "2027/01/15 08:00:00"}
    )
    response = await send(served, request)
    assert (response.status_code, code_of(response)) == (400, "InvalidTimeStamp.Format")


async def test_answers_carry_the_simulated_apis_clock_in_their_date_header(
    served: Served,
) -> None:
    ok = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    refused = await send(
        served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, date=START - 3600)
    )
    for response in (ok, refused):
        assert response.headers.get_list("date") == ["Fri, 15 Jan 2027 08:00:00 GMT"]


async def test_v3_date_fourteen_minutes_off_is_accepted(served: Served) -> None:
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, date=served.clock() - 14 * 60)
    assert (await send(served, request)).status_code == 200


async def test_v3_stale_date_swapped_for_a_fresh_one_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, date=served.clock() - 3600)
    request.headers["x-acs-date"] = format_api_time(served.clock())
    assert code_of(await send(served, request)) == "SignatureDoesNotMatch"


async def test_v3_reused_nonce_is_signature_nonce_used(served: Served) -> None:
    first = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, nonce="once")
    assert (await send(served, first)).status_code == 200
    again = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, nonce="once")
    response = await send(served, again)
    assert (response.status_code, code_of(response)) == (400, "SignatureNonceUsed")


async def test_v3_nonce_is_forgotten_once_its_requests_date_has_expired(served: Served) -> None:
    first = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, nonce="once")
    assert (await send(served, first)).status_code == 200
    served.clock.advance(16 * 60)
    assert code_of(await send(served, first)) == "InvalidTimeStamp.Expired"  # the replay
    fresh = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, nonce="once")
    assert (await send(served, fresh)).status_code == 200


async def test_v3_unknown_access_key_is_invalid_access_key_id_not_found(served: Served) -> None:
    served.client.key_id = "no-such-key"
    response = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    assert (response.status_code, code_of(response)) == (404, "InvalidAccessKeyId.NotFound")


async def test_v3_wrong_secret_is_signature_does_not_match(served: Served) -> None:
    served.client.secret = "not-the-secret"
    response = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    assert (response.status_code, code_of(response)) == (400, "SignatureDoesNotMatch")


@pytest.mark.parametrize(
    "authorization",
    [
        "ACS3-HMAC-SHA256 Credential=demo-access-key-id",
        "ACS3-HMAC-SM3 Credential=demo-access-key-id,SignedHeaders=host,Signature=00",
        "Bearer abc",
    ],
    ids=["fields-missing", "other-algorithm", "not-acs3"],
)
async def test_v3_malformed_authorization_is_incomplete_signature(
    served: Served, authorization: str
) -> None:
    served.client.signer = "own"
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1)
    request.headers["authorization"] = authorization
    assert code_of(await send(served, request)) == "IncompleteSignature"


async def test_request_without_any_signature_is_incomplete_signature(served: Served) -> None:
    response = await served.client.http.post(
        f"{served.server.url}/?Action=DescribeVpnGateways&Version=2016-04-28&RegionId=cn-hangzhou"
    )
    assert (response.status_code, code_of(response)) == (400, "IncompleteSignature")


async def test_v3_query_renormalised_on_the_wire_still_verifies(served: Served) -> None:
    # signed over RFC 3986 (`%20`, `%2F`); sent as the SDK's async transport may send it
    params = {**HZ1, "ClientToken": "a b/c"}
    request = served.client.v3("GetVpnGatewayDiagnoseResult", params)
    raw = str(request.url).replace("%20", "+").replace("%2F", "/")
    request.url = httpx.URL(raw)
    assert "a+b/c" in str(request.url)
    assert (await send(served, request)).status_code == 200


async def test_v3_get_is_accepted_like_post(served: Served) -> None:
    request = served.client.v3("GetVpnGatewayDiagnoseResult", HZ1, method="GET")
    assert (await send(served, request)).status_code == 200


async def test_v3_form_encoded_body_parameters_are_read(served: Served) -> None:
    body = b"VpnGatewayId=vpn-hz3unreachable"
    request = served.client.v3(
        "GetVpnGatewayDiagnoseResult",
        {"RegionId": "cn-hangzhou"},
        body=body,
        content_type="application/x-www-form-urlencoded",
    )
    response = await send(served, request)
    assert response.json()["VpnGatewayId"] == "vpn-hz3unreachable"


async def test_v3_body_not_matching_its_content_sha256_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v3(
        "GetVpnGatewayDiagnoseResult",
        {"RegionId": "cn-hangzhou"},
        body=b"VpnGatewayId=vpn-hz1healthy",
        content_type="application/x-www-form-urlencoded",
    )
    headers = {k: v for k, v in request.headers.items() if k != "content-length"}
    tampered = served.client.http.build_request(
        "POST", request.url, headers=headers, content=b"VpnGatewayId=vpn-hz2quota"
    )
    assert code_of(await send(served, tampered)) == "SignatureDoesNotMatch"


# STS -----------------------------------------------------------------------------------


async def test_sts_key_with_its_security_token_is_accepted(served: Served) -> None:
    served.simulator.add_key_pair("STS.demo", "sts-secret", security_token="token-1")
    served.client.key_id, served.client.secret, served.client.token = (
        "STS.demo",
        "sts-secret",
        "token-1",
    )
    assert (await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))).is_success
    assert (await send(served, served.client.v1("GetVpnGatewayDiagnoseResult", HZ1))).is_success


async def test_sts_key_with_another_token_is_rejected(served: Served) -> None:
    served.simulator.add_key_pair("STS.demo", "sts-secret", security_token="token-1")
    served.client.key_id, served.client.secret, served.client.token = (
        "STS.demo",
        "sts-secret",
        "token-2",
    )
    response = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    assert code_of(response) == "InvalidSecurityToken.Malformed"


async def test_sts_key_without_its_token_is_rejected(served: Served) -> None:
    served.simulator.add_key_pair("STS.demo", "sts-secret", security_token="token-1")
    served.client.key_id, served.client.secret = "STS.demo", "sts-secret"
    response = await send(served, served.client.v3("GetVpnGatewayDiagnoseResult", HZ1))
    assert code_of(response) == "InvalidSecurityToken.Malformed"


# V1 ------------------------------------------------------------------------------------


async def test_v1_request_signed_per_facts_is_answered(served: Served) -> None:
    response = await send(served, served.client.v1("GetVpnGatewayDiagnoseResult", HZ1))
    assert response.status_code == 200
    assert served.simulator.requests[-1].signature_version == "v1"


async def test_v1_query_value_changed_after_signing_is_signature_does_not_match(
    served: Served,
) -> None:
    served.client.signer = "own"
    request = served.client.v1("GetVpnGatewayDiagnoseResult", HZ1)
    request.url = request.url.copy_set_param("VpnGatewayId", "vpn-hz2quota")
    assert code_of(await send(served, request)) == "SignatureDoesNotMatch"


async def test_v1_stale_timestamp_is_invalid_timestamp_expired(served: Served) -> None:
    request = served.client.v1("GetVpnGatewayDiagnoseResult", HZ1, timestamp=served.clock() - 3600)
    assert code_of(await send(served, request)) == "InvalidTimeStamp.Expired"


async def test_v1_reused_signature_nonce_is_signature_nonce_used(served: Served) -> None:
    assert (await send(served, served.client.v1("DescribeVpnGateways", HZ1, nonce="n"))).is_success
    response = await send(served, served.client.v1("DescribeVpnGateways", HZ1, nonce="n"))
    assert code_of(response) == "SignatureNonceUsed"


async def test_v1_unknown_access_key_is_invalid_access_key_id_not_found(served: Served) -> None:
    served.client.key_id = "no-such-key"
    response = await send(served, served.client.v1("GetVpnGatewayDiagnoseResult", HZ1))
    assert code_of(response) == "InvalidAccessKeyId.NotFound"


async def test_v1_other_signature_method_is_incomplete_signature(served: Served) -> None:
    served.client.signer = "own"
    request = served.client.v1("GetVpnGatewayDiagnoseResult", HZ1)
    request.url = request.url.copy_set_param("SignatureMethod", "HMAC-SHA256")
    assert code_of(await send(served, request)) == "IncompleteSignature"


# Routing and versions ------------------------------------------------------------------


async def test_unknown_action_is_invalid_action_not_found(served: Served) -> None:
    response = await served.client.call("DescribeEverything", RegionId="cn-hangzhou")
    assert (response.status_code, code_of(response)) == (404, "InvalidAction.NotFound")


async def test_other_api_version_is_invalid_version(served: Served) -> None:
    served.client.signer = "own"
    request = served.client.v3("DescribeVpnGateways", {"RegionId": "cn-hangzhou"})
    request.headers["x-acs-version"] = "2014-05-26"  # no longer matches the signature...
    # ...but the version is checked first, as the gateway routes on it
    assert code_of(await send(served, request)) == "InvalidVersion"


async def test_error_body_has_the_api_fields_and_request_id_header(served: Served) -> None:
    response = await served.client.call("GetVpnGatewayDiagnoseResult", RegionId="cn-hangzhou")
    body = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["HostId"] == served.server.endpoint
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    assert response.headers["content-type"].startswith("application/json")


async def test_successful_answer_carries_a_request_id(served: Served) -> None:
    response = await served.client.call("DescribeVpnGateways", RegionId="cn-hangzhou")
    assert response.json()["RequestId"] == response.headers["x-acs-request-id"]


async def test_journal_records_action_params_key_status_and_code(served: Served) -> None:
    await served.client.call("GetVpnGatewayDiagnoseResult", **HZ1)
    await served.client.call("GetVpnGatewayDiagnoseResult", RegionId="cn-hangzhou")
    ok, failed = list(served.simulator.requests)
    assert (ok.action, ok.params, ok.access_key_id, ok.status, ok.code) == (
        "GetVpnGatewayDiagnoseResult",
        HZ1,
        DEMO_ACCESS_KEY_ID,
        200,
        None,
    )
    assert (failed.status, failed.code) == (400, "MissingParam.DiagnoseInfo")
    assert served.simulator.calls["GetVpnGatewayDiagnoseResult"] == 2
    assert served.simulator.journal.failures == {
        ("GetVpnGatewayDiagnoseResult", "MissingParam.DiagnoseInfo"): 1
    }


async def test_journal_keeps_v1_protocol_parameters_out_of_params(served: Served) -> None:
    await send(served, served.client.v1("GetVpnGatewayDiagnoseResult", HZ1))
    assert served.simulator.requests[-1].params == HZ1
