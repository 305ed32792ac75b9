"""The V3 signer (`exporter.cloud.signer`): the FACTS reference vector, and byte-identical
`Authorization` to the official SDK for whatever requests the client puts on the wire."""

from __future__ import annotations

import asyncio
import hashlib
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from alibabacloud_tea_openapi.utils import Utils  # type: ignore[import-untyped]
from darabonba.request import DaraRequest  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.signer import AcsV3Auth
from exporter.cloud.signing import EMPTY_BODY_SHA256, parse_v3_authorization
from exporter.telemetry.self_metrics import SelfMetrics
from tests.fakes import CountingCredentials

REFERENCE_SIGNATURE = "243059edf27a8ed389ec8e49bdc421862f12a8f1b42dcf38c24cbd395a670ec6"


class FailingCredentials:
    profile = "broken"

    async def get(self) -> Credential:
        raise OSError("metadata service unreachable")


@dataclass
class Captured:
    """One request exactly as it arrived on the socket."""

    method: str
    target: str
    headers: dict[str, str]
    header_names: list[str]
    body: bytes

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass
class CaptureServer:
    """A bare HTTP/1.1 server on loopback that records requests and answers `{}`."""

    requests: list[Captured] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                pairs = [line.split(":", 1) for line in lines if line]
                headers = {name.strip().lower(): value.strip() for name, value in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                names = [name.strip().lower() for name, _ in pairs]
                self.requests.append(Captured(method, target, headers, names, body))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    server = CaptureServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(timeout=5.0) as client:
        yield client


def unlimited() -> RateBudgets:
    return RateBudgets(overrides={}, share=1.0, burst=1_000_000)


async def signed(auth: AcsV3Auth, request: httpx.Request) -> httpx.Request:
    flow = auth.async_auth_flow(request)
    return await flow.__anext__()


async def test_reference_vector_of_facts_is_reproduced() -> None:
    request = httpx.Request(
        "POST", "https://vpc.aliyuncs.com/?RegionId=cn-hangzhou&VpnGatewayId=vpn-123"
    )
    auth = AcsV3Auth(
        CountingCredentials(Credential("testid", "testsecret")),
        "GetVpnGatewayDiagnoseResult",
        clock=lambda: 1704067200.0,
        nonce=lambda: "abc123",
    )

    request = await signed(auth, request)

    assert request.headers["x-acs-date"] == "2024-01-01T00:00:00Z"
    assert request.headers["x-acs-version"] == "2016-04-28"
    assert request.headers["x-acs-content-sha256"] == EMPTY_BODY_SHA256
    assert request.headers["authorization"] == (
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        f"Signature={REFERENCE_SIGNATURE}"
    )


async def test_sts_token_is_sent_and_signed() -> None:
    credentials = CountingCredentials(Credential("id", "secret", security_token="tok+en/="))
    auth = AcsV3Auth(credentials, "DescribeVpnGateways")

    request = await signed(auth, httpx.Request("POST", "https://vpc.aliyuncs.com/?RegionId=x"))

    assert request.headers["x-acs-security-token"] == "tok+en/="
    fields = parse_v3_authorization(request.headers["authorization"])
    assert fields is not None
    assert "x-acs-security-token" in fields["SignedHeaders"].split(";")


async def test_every_request_gets_its_own_nonce_date_and_credential() -> None:
    credentials = CountingCredentials(Credential("id", "secret"))
    times = iter([1704067200.0, 1704067201.0])
    auth = AcsV3Auth(credentials, "DescribeVpnGateways", clock=lambda: next(times))
    url = "https://vpc.aliyuncs.com/?RegionId=x"

    first = await signed(auth, httpx.Request("POST", url))
    second = await signed(auth, httpx.Request("POST", url))

    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]
    assert first.headers["x-acs-date"] != second.headers["x-acs-date"]
    assert first.headers["authorization"] != second.headers["authorization"]
    assert credentials.calls == 2


async def test_a_failing_credentials_source_is_a_credentials_error_naming_the_profile() -> None:
    auth = AcsV3Auth(FailingCredentials(), "DescribeVpnGateways")

    with pytest.raises(CredentialsError, match=r"'broken'.*metadata service unreachable"):
        await signed(auth, httpx.Request("POST", "https://vpc.aliyuncs.com/"))


def test_a_sync_client_is_refused() -> None:
    auth = AcsV3Auth(CountingCredentials(Credential("id", "secret")), "DescribeVpnGateways")

    with httpx.Client() as client, pytest.raises(RuntimeError, match="AsyncClient"):
        client.post("http://127.0.0.1:9/", auth=auth)


async def test_every_host_x_acs_and_content_type_header_on_the_wire_is_signed(
    capture: CaptureServer, http: httpx.AsyncClient
) -> None:
    credentials = CountingCredentials(Credential("id", "secret", security_token="token"))
    client = VpcClient(http, credentials, "cn-hangzhou", endpoint=capture.url)

    await client.call("DescribeVpnGateways", {"PageSize": "50"})

    [wire] = capture.requests
    fields = parse_v3_authorization(wire.headers["authorization"])
    assert fields is not None
    sent = {
        name
        for name in wire.header_names
        if name in ("host", "content-type") or name.startswith("x-acs-")
    }
    assert sent == {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
        "x-acs-security-token",
    }
    assert set(fields["SignedHeaders"].split(";")) == sent
    assert wire.headers["x-acs-content-sha256"] == hashlib.sha256(wire.body).hexdigest()


PARAM_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,15}", fullmatch=True).filter(
    lambda name: name != "RegionId"
)
TOKENS = st.text(string.ascii_letters + string.digits + "+/=", min_size=1, max_size=400)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.dictionaries(PARAM_NAMES, st.text(max_size=40), max_size=60),
    action=st.sampled_from(["GetVpnGatewayDiagnoseResult", "DescribeVpnGateways"]),
    region_id=st.sampled_from(["cn-hangzhou", "ap-southeast-1", "eu-central-1"]),
    access_key_id=st.text(string.ascii_letters + string.digits, min_size=1, max_size=30),
    secret=st.text(min_size=1, max_size=40),
    token=st.none() | TOKENS,
)
async def test_authorization_is_byte_identical_to_the_official_sdk(
    capture: CaptureServer,
    http: httpx.AsyncClient,
    params: dict[str, str],
    action: str,
    region_id: str,
    access_key_id: str,
    secret: str,
    token: str | None,
) -> None:
    credentials = CountingCredentials(Credential(access_key_id, secret, security_token=token))
    client = VpcClient(
        http,
        credentials,
        region_id,
        endpoint=capture.url,
        budgets=unlimited(),
        metrics=SelfMetrics(),
    )
    capture.requests.clear()

    await client.call(action, params)

    [wire] = capture.requests
    decoded = dict(parse_qsl(wire.query, keep_blank_values=True, errors="strict"))
    assert decoded == {"RegionId": region_id, **params}
    fields = parse_v3_authorization(wire.headers["authorization"])
    assert fields is not None
    sdk_request = DaraRequest()
    sdk_request.method = wire.method
    sdk_request.pathname = urlsplit(wire.target).path
    sdk_request.query = decoded
    sdk_request.headers = {name: wire.headers[name] for name in fields["SignedHeaders"].split(";")}
    expected = Utils.get_authorization(
        sdk_request,
        "ACS3-HMAC-SHA256",
        wire.headers["x-acs-content-sha256"],
        access_key_id,
        secret,
    )
    assert wire.headers["authorization"] == expected


FORM_FIELDS = st.dictionaries(PARAM_NAMES, st.text(max_size=40), min_size=1, max_size=20)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.dictionaries(PARAM_NAMES, st.text(max_size=20), max_size=5),
    form=FORM_FIELDS,
    secret=st.text(min_size=1, max_size=40),
    token=st.none() | TOKENS,
)
async def test_authorization_of_a_form_encoded_body_is_byte_identical_to_the_official_sdk(
    capture: CaptureServer,
    http: httpx.AsyncClient,
    query: dict[str, str],
    form: dict[str, str],
    secret: str,
    token: str | None,
) -> None:
    """A form body as the SDK encodes one (`formData` bodies), signed by our signer: the
    payload hash and the Authorization on the wire are what the SDK computes for it."""
    body = Utils.to_form(form).encode("utf-8")
    auth = AcsV3Auth(
        CountingCredentials(Credential("id", secret, security_token=token)), "DescribeVpnGateways"
    )
    capture.requests.clear()
    url = httpx.URL(capture.url, params={"RegionId": "cn-hangzhou", **query})
    await http.post(
        url,
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=auth,
    )

    [wire] = capture.requests
    assert wire.body == body
    assert dict(parse_qsl(wire.body.decode(), keep_blank_values=True)) == form
    sdk_payload_hash = Utils.hash(wire.body, "ACS3-HMAC-SHA256").hex()
    assert wire.headers["x-acs-content-sha256"] == sdk_payload_hash
    fields = parse_v3_authorization(wire.headers["authorization"])
    assert fields is not None
    signed = fields["SignedHeaders"].split(";")
    assert "content-type" in signed
    sdk_request = DaraRequest()
    sdk_request.method = wire.method
    sdk_request.pathname = urlsplit(wire.target).path
    sdk_request.query = dict(parse_qsl(wire.query, keep_blank_values=True, errors="strict"))
    sdk_request.headers = {name: wire.headers[name] for name in signed}
    expected = Utils.get_authorization(
        sdk_request, "ACS3-HMAC-SHA256", sdk_payload_hash, "id", secret
    )
    assert wire.headers["authorization"] == expected
