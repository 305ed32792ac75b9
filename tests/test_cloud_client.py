"""The VPC client against a real HTTP server on loopback: retries, backoff, error mapping,
the response cap, the rate budget and the self-metrics. Backoff and budget waits run on a
fake clock; only the HTTP exchanges are real."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import logging
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.cloud.client import VpcClient, endpoint_url, make_http_client
from exporter.cloud.errors import (
    ApiTimeout,
    CloudError,
    CredentialsError,
    InvalidResponse,
    NetworkError,
)
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy, parse_retry_after
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET, demo_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.fakes import CountingCredentials, FakeClock

ACTION = "GetVpnGatewayDiagnoseResult"
SECRET = "s3cr3t-never-logged"
TOKEN = "sts-token-never-logged"

Reply = Callable[[asyncio.StreamWriter], Awaitable[None]]


def response_head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Reply"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw(status: int, body: bytes, content_type: str, **headers: str) -> Reply:
    async def reply(writer: asyncio.StreamWriter) -> None:
        head = {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}
        writer.write(response_head(status, head) + body)
        await writer.drain()

    return reply


def answer(status: int = 200, body: dict[str, Any] | None = None, **headers: str) -> Reply:
    document = {"RequestId": "REQ-OK"} if body is None else body
    return raw(status, json.dumps(document).encode(), "application/json", **headers)


def cloud_error(status: int, code: str, **headers: str) -> Reply:
    body = {"RequestId": f"REQ-{code}", "HostId": "vpc", "Code": code, "Message": f"{code}!"}
    return answer(status, body, **{key.replace("_", "-"): value for key, value in headers.items()})


async def reset(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def hang(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()


async def endless_body(writer: asyncio.StreamWriter) -> None:
    """A chunked body that never ends: only a cap enforced while streaming stops it."""
    writer.write(
        response_head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    )
    chunk = b"x" * 65536
    while True:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FaultServer:
    """HTTP/1.1 on loopback answering each request with the next scripted reply."""

    replies: deque[Reply] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                pairs = [line.split(":", 1) for line in lines if line]
                headers = {name.strip().lower(): value.strip() for name, value in pairs}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                parts = urlsplit(target)
                params = dict(parse_qsl(parts.query, keep_blank_values=True))
                self.seen.append(
                    Seen(method, target if parts.scheme else parts.path, params, headers, body)
                )
                await (self.replies.popleft() if self.replies else answer())(writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()


async def serve(server: FaultServer, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl_context)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return listener


@pytest.fixture
async def api() -> AsyncIterator[FaultServer]:
    server = FaultServer()
    listener = await serve(server)
    yield server
    listener.close()
    for task in list(server.tasks):
        task.cancel()
    await asyncio.gather(*server.tasks, return_exceptions=True)


class NoCredentials:
    profile = "default"

    async def get(self) -> Credential:
        raise CredentialsError("", "no credential source answered")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> SelfMetrics:
    return SelfMetrics()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(timeout=5.0) as client:
        yield client


@pytest.fixture
def make_client(
    api: FaultServer, http: httpx.AsyncClient, clock: FakeClock, metrics: SelfMetrics
) -> Callable[..., VpcClient]:
    def make(**overrides: Any) -> VpcClient:
        settings: dict[str, Any] = {
            "endpoint": api.url,
            "budgets": RateBudgets(share=1.0, burst=1000, clock=clock.monotonic, sleep=clock.sleep),
            "metrics": metrics,
            "retry": RetryPolicy(max_retries=3, backoff_base=0.5, backoff_cap=4.0),
            "clock": clock.monotonic,
            "wall_clock": clock.time,
            "sleep": clock.sleep,
            "rand": lambda: 1.0,
            **overrides,
        }
        credentials = settings.pop(
            "credentials", CountingCredentials(Credential("AKID", SECRET, TOKEN))
        )
        return VpcClient(settings.pop("http", http), credentials, "cn-hangzhou", **settings)

    return make


def requests_total(metrics: SelfMetrics, action: str = ACTION) -> float:
    return (
        metrics.registry.get_sample_value("aliyun_vpn_api_requests_total", {"action": action})
        or 0.0
    )


def failures(metrics: SelfMetrics, code: str, action: str = ACTION) -> float:
    labels = {"action": action, "code": code}
    return metrics.registry.get_sample_value("aliyun_vpn_api_request_failures_total", labels) or 0.0


def durations_observed(metrics: SelfMetrics, action: str = ACTION) -> float:
    labels = {"action": action}
    return (
        metrics.registry.get_sample_value("aliyun_vpn_api_request_duration_seconds_count", labels)
        or 0.0
    )


# --- the wire ------------------------------------------------------------------------------


async def test_a_call_posts_its_params_and_region_in_the_query_with_an_empty_body(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(answer(body={"RequestId": "R1", "TotalCount": 1}))

    result = await make_client().call(ACTION, {"VpnGatewayId": "vpn-123"})

    assert result == {"RequestId": "R1", "TotalCount": 1}
    [request] = api.seen
    assert (request.method, request.path, request.body) == ("POST", "/", b"")
    assert request.params == {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-123"}
    assert request.headers["x-acs-action"] == ACTION
    assert request.headers["x-acs-version"] == "2016-04-28"
    assert request.headers["x-acs-security-token"] == TOKEN
    assert requests_total(metrics) == 1
    assert durations_observed(metrics) == 1


async def test_the_typed_helpers_send_the_documented_parameters(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    client = make_client()

    await client.get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-1")
    await client.get_vpn_gateway_diagnose_result(diagnose_id="vpndgn-1")
    await client.diagnose_vpn_gateway(
        "vpn-1", "vco-1", private_source_ip="192.168.1.1", private_destination_ip="10.0.0.1"
    )
    await client.describe_vpn_gateways(2, 50, vpc_id="vpc-1", tags={"env": "prod", "team": "net"})
    await client.describe_vpn_connections(vpn_gateway_id="vpn-1")

    region = {"RegionId": "cn-hangzhou"}
    assert [seen.params for seen in api.seen] == [
        region | {"VpnGatewayId": "vpn-1"},
        region | {"DiagnoseId": "vpndgn-1"},
        region
        | {
            "VpnGatewayId": "vpn-1",
            "ResourceType": "IPsec",
            "ResourceId": "vco-1",
            "IPsecExtendInfo": (
                '{"PrivateSourceIp":"192.168.1.1","PrivateDestinationIp":"10.0.0.1"}'
            ),
        },
        region
        | {
            "PageNumber": "2",
            "PageSize": "50",
            "VpcId": "vpc-1",
            "Tag.1.Key": "env",
            "Tag.1.Value": "prod",
            "Tag.2.Key": "team",
            "Tag.2.Value": "net",
        },
        region | {"PageNumber": "1", "PageSize": "50", "VpnGatewayId": "vpn-1"},
    ]
    assert [seen.headers["x-acs-action"] for seen in api.seen] == [
        ACTION,
        ACTION,
        "DiagnoseVpnGateway",
        "DescribeVpnGateways",
        "DescribeVpnConnections",
    ]


async def test_the_helpers_refuse_calls_the_api_would_reject(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    client = make_client()

    with pytest.raises(ValueError):
        await client.get_vpn_gateway_diagnose_result()
    with pytest.raises(ValueError):
        await client.describe_vpn_gateways(1, 51)
    with pytest.raises(ValueError):
        await client.describe_vpn_connections(0)
    with pytest.raises(ValueError):
        await client.describe_vpn_gateways(tags={f"k{n}": "v" for n in range(21)})
    assert api.seen == []


@pytest.mark.parametrize(
    ("template", "url"),
    [
        (None, "https://vpc.cn-hangzhou.aliyuncs.com"),
        ("vpc-vpc.{region_id}.aliyuncs.com", "https://vpc-vpc.cn-hangzhou.aliyuncs.com"),
        ("vpc.aliyuncs.com", "https://vpc.aliyuncs.com"),
        ("http://127.0.0.1:1234", "http://127.0.0.1:1234"),
        ("http://127.0.0.1:1234/", "http://127.0.0.1:1234"),
    ],
)
def test_the_endpoint_comes_from_a_template(template: str | None, url: str) -> None:
    assert endpoint_url(template, "cn-hangzhou") == url


@pytest.mark.parametrize("template", ["ftp://vpc.example", "https://vpc.example/api", "https://"])
def test_an_endpoint_that_is_not_a_host_is_refused(template: str) -> None:
    with pytest.raises(ValueError):
        endpoint_url(template, "cn-hangzhou")


# --- errors ---------------------------------------------------------------------------------


async def test_a_cloud_error_carries_status_code_message_and_request_id(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(cloud_error(404, "InvalidVpnGatewayId.NotFound"))

    with pytest.raises(CloudError) as caught:
        await make_client().get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-x")

    error = caught.value
    assert (error.status, error.code, error.message, error.request_id) == (
        404,
        "InvalidVpnGatewayId.NotFound",
        "InvalidVpnGatewayId.NotFound!",
        "REQ-InvalidVpnGatewayId.NotFound",
    )
    assert error.action == ACTION
    assert len(api.seen) == 1
    assert failures(metrics, "InvalidVpnGatewayId.NotFound") == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "SignatureDoesNotMatch"),
        (404, "InvalidAccessKeyId.NotFound"),
        (403, "Forbidden.RAM"),
        (404, "InvalidVpnGatewayInstanceId.NotFound"),
        (400, "MissingParam.DiagnoseInfo"),
        (503, "InvalidDiagnoseId.NotFound"),
    ],
)
async def test_auth_permission_and_not_found_errors_are_never_retried(
    api: FaultServer,
    make_client: Callable[..., VpcClient],
    clock: FakeClock,
    status: int,
    code: str,
) -> None:
    api.script(cloud_error(status, code))

    with pytest.raises(CloudError, match=re.escape(code)):
        await make_client().call(ACTION, {})

    assert len(api.seen) == 1
    assert clock.sleeps == []


async def test_an_undocumented_code_is_counted_as_other_but_kept_on_the_error(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(cloud_error(400, "Brand.New.Code"))

    with pytest.raises(CloudError) as caught:
        await make_client().call(ACTION, {})

    assert caught.value.code == "Brand.New.Code"
    assert failures(metrics, "other") == 1
    assert failures(metrics, "Brand.New.Code") == 0


@pytest.mark.parametrize(
    "reply",
    [
        raw(200, b'{"RequestId": "R", "DiagnoseResult', "application/json"),
        raw(200, b"<html><body>Welcome</body></html>", "text/html"),
        raw(200, b"[1, 2, 3]", "application/json"),
        raw(200, b"[" * 100_000, "application/json"),
        raw(404, b"<html>Not Found</html>", "text/html"),
    ],
    ids=["truncated-json", "html", "not-an-object", "too-deep", "html-404"],
)
async def test_an_answer_that_is_not_a_json_object_is_an_invalid_response_and_not_retried(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics, reply: Reply
) -> None:
    api.script(reply)

    with pytest.raises(InvalidResponse):
        await make_client().call(ACTION, {})

    assert len(api.seen) == 1
    assert failures(metrics, "InvalidResponse") == 1


async def test_an_html_page_from_a_load_balancer_is_retried_as_a_5xx(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(raw(502, b"<html>Bad Gateway</html>", "text/html"))

    assert await make_client().call(ACTION, {}) == {"RequestId": "REQ-OK"}

    assert len(api.seen) == 2
    assert failures(metrics, "InvalidResponse") == 1


async def test_a_body_above_the_declared_cap_is_refused_before_it_is_read(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    api.script(raw(200, b"{" + b" " * 4096 + b"}", "application/json"))

    with pytest.raises(InvalidResponse, match="larger than 1024 bytes"):
        await make_client(max_response_bytes=1024).call(ACTION, {})


async def test_the_response_cap_is_enforced_while_streaming(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    api.script(endless_body)

    with pytest.raises(InvalidResponse, match="larger than 1048576 bytes"):
        await make_client(max_response_bytes=1024 * 1024).call(ACTION, {})


async def test_the_response_cap_applies_to_the_decompressed_body(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    bomb = gzip.compress(b'{"a": "' + b"0" * 4_000_000 + b'"}')
    api.script(raw(200, bomb, "application/json", **{"Content-Encoding": "gzip"}))

    with pytest.raises(InvalidResponse, match="larger than"):
        await make_client(max_response_bytes=1024 * 1024).call(ACTION, {})


async def test_a_reset_connection_is_a_network_error_not_a_timeout(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(reset, reset, reset, reset)

    with pytest.raises(NetworkError) as caught:
        await make_client().call(ACTION, {})

    assert not isinstance(caught.value, ApiTimeout)
    assert len(api.seen) == 4
    assert failures(metrics, "NetworkError") == 4
    assert requests_total(metrics) == 4


async def test_a_refused_connection_is_a_network_error(
    make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    listener = await asyncio.start_server(lambda _reader, _writer: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()

    with pytest.raises(NetworkError) as caught:
        await make_client(
            endpoint=f"http://127.0.0.1:{port}", retry=RetryPolicy(max_retries=0)
        ).call(ACTION, {})

    assert not isinstance(caught.value, ApiTimeout)
    assert failures(metrics, "NetworkError") == 1


async def test_an_answer_later_than_the_attempt_deadline_is_a_timeout(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(hang)

    result = await make_client(timeout=0.05).call(ACTION, {})

    assert result == {"RequestId": "REQ-OK"}
    assert failures(metrics, "Timeout") == 1
    assert requests_total(metrics) == 2


async def test_a_silent_socket_past_the_read_timeout_is_a_timeout(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    api.script(hang)
    async with make_http_client(timeout=0.05) as impatient:
        client = make_client(http=impatient, timeout=5.0, retry=RetryPolicy(max_retries=0))

        with pytest.raises(ApiTimeout):
            await client.call(ACTION, {})


async def test_a_credentials_failure_sends_nothing_and_is_not_retried(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    with pytest.raises(CredentialsError):
        await make_client(credentials=NoCredentials()).call(ACTION, {})

    assert api.seen == []
    assert requests_total(metrics) == 0


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "Throttling"),
        (400, "Throttling.User"),
        (400, "Throttling.Api"),
        (503, "ServiceUnavailable"),
        (400, "VpnGateway.Configuring"),
        (500, "InternalError"),
        (504, "GatewayTimeout"),
    ],
)
async def test_transient_errors_are_retried(
    api: FaultServer, make_client: Callable[..., VpcClient], status: int, code: str
) -> None:
    api.script(cloud_error(status, code), cloud_error(status, code))

    assert await make_client().call(ACTION, {}) == {"RequestId": "REQ-OK"}

    assert len(api.seen) == 3


async def test_every_attempt_is_freshly_signed_and_counted(
    api: FaultServer,
    make_client: Callable[..., VpcClient],
    metrics: SelfMetrics,
) -> None:
    credentials = CountingCredentials(Credential("AKID", SECRET))
    api.script(cloud_error(503, "ServiceUnavailable"), cloud_error(400, "Throttling.User"))

    await make_client(credentials=credentials).call(ACTION, {"VpnGatewayId": "vpn-1"})

    nonces = {seen.headers["x-acs-signature-nonce"] for seen in api.seen}
    dates = [seen.headers["x-acs-date"] for seen in api.seen]
    assert len(nonces) == 3
    assert dates == sorted(dates) and dates[0] != dates[-1]
    assert credentials.calls == 3
    assert requests_total(metrics) == 3
    assert durations_observed(metrics) == 3
    assert failures(metrics, "ServiceUnavailable") == 1
    assert failures(metrics, "Throttling.User") == 1


async def test_backoff_is_exponential_with_full_jitter_up_to_the_cap(
    api: FaultServer, make_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    api.script(*[cloud_error(503, "ServiceUnavailable")] * 6)
    policy = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_cap=4.0)

    with pytest.raises(CloudError, match="ServiceUnavailable"):
        await make_client(retry=policy, rand=lambda: 0.5).call(ACTION, {})

    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert len(api.seen) == 6


def test_full_jitter_draws_anywhere_between_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(max_retries=20, backoff_base=1.0, backoff_cap=30.0)
    error = NetworkError(ACTION, "reset")

    assert policy.delay(3, error, lambda: 0.0) == 0.0
    assert policy.delay(3, error, lambda: 0.999) == pytest.approx(7.992)
    assert policy.delay(10, error, lambda: 0.999) == pytest.approx(29.97)


async def test_retry_after_is_a_floor_for_the_wait(
    api: FaultServer, make_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    api.script(cloud_error(400, "Throttling.User", x_acs_retry_after="3000"))

    await make_client(rand=lambda: 0.0).call(ACTION, {})

    assert 3.0 in clock.sleeps
    assert len(api.seen) == 2


async def test_a_retry_after_longer_than_the_policy_allows_ends_the_call(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    api.script(cloud_error(400, "Throttling.User", x_acs_retry_after="600000"))

    with pytest.raises(CloudError) as caught:
        await make_client(retry=RetryPolicy(max_retry_after=60.0)).call(ACTION, {})

    assert caught.value.retry_after == 600.0
    assert len(api.seen) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1500", 1.5),
        ("250", 0.25),
        ("2s", 2.0),
        ("2.5 S", 2.5),
        ("500ms", 0.5),
        (" 40 ", 0.04),
        ("0", None),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_milliseconds_unless_it_says_seconds(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header) == seconds


async def test_retries_stop_after_max_retries_with_the_last_error(
    api: FaultServer, make_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    api.script(*[cloud_error(400, "Throttling.User")] * 5)

    with pytest.raises(CloudError, match=r"Throttling\.User"):
        await make_client(retry=RetryPolicy(max_retries=2)).call(ACTION, {})

    assert len(api.seen) == 3
    assert failures(metrics, "Throttling.User") == 3


# --- the rate budget ----------------------------------------------------------------------


async def test_every_attempt_waits_for_a_slot_of_the_budget(
    api: FaultServer, make_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    budgets = RateBudgets({ACTION: (60, 60.0)}, clock=clock.monotonic, sleep=clock.sleep)
    api.script(cloud_error(503, "ServiceUnavailable"))
    client = make_client(budgets=budgets, rand=lambda: 0.0)

    await client.call(ACTION, {})
    await client.call(ACTION, {})

    # retry: no backoff drawn (rand 0), but the slot a second after the first attempt
    assert clock.sleeps == [0.0, 1.0, 1.0]
    assert len(api.seen) == 3


async def test_a_throttling_answer_slows_the_budget_down(
    api: FaultServer, make_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    budgets = RateBudgets({ACTION: (60, 60.0)}, clock=clock.monotonic, sleep=clock.sleep)
    api.script(cloud_error(400, "Throttling.User", x_acs_retry_after="5000"))
    client = make_client(budgets=budgets, rand=lambda: 0.0)

    await client.call(ACTION, {})

    assert client.rate_per_second(ACTION) < budgets.rate_per_second(ACTION)
    assert sum(clock.sleeps) >= 5.0


# --- secrets --------------------------------------------------------------------------------


async def test_no_secret_or_signature_reaches_the_logs(
    api: FaultServer,
    make_client: Callable[..., VpcClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.script(cloud_error(400, "Throttling.User"), reset, cloud_error(403, "Forbidden"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(CloudError):
        await make_client().call(ACTION, {"VpnGatewayId": "vpn-1"})

    signatures = [seen.headers["authorization"].rpartition("Signature=")[2] for seen in api.seen]
    assert "retrying" in caplog.text
    for secret in [SECRET, TOKEN, "Authorization", "authorization", *signatures]:
        assert secret not in caplog.text


# --- transport settings ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert, key) of the server, and the CA file."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-vpc")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert_file


@pytest.fixture
async def tls_api(tls_files: tuple[Path, Path, Path]) -> AsyncIterator[FaultServer]:
    cert_file, key_file, _ = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = FaultServer()
    listener = await serve(server, context)
    yield server
    listener.close()


async def test_ca_file_is_trusted_for_tls(
    tls_api: FaultServer, tls_files: tuple[Path, Path, Path], make_client: Callable[..., VpcClient]
) -> None:
    async with make_http_client(ca_file=str(tls_files[2])) as trusting:
        result = await make_client(http=trusting, endpoint=tls_api.url).call(ACTION, {})

    assert result == {"RequestId": "REQ-OK"}


async def test_an_unknown_certificate_is_a_network_error(
    tls_api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    client = make_client(endpoint=tls_api.url, retry=RetryPolicy(max_retries=0))

    with pytest.raises(NetworkError, match=r"(?i)certificate"):
        await client.call(ACTION, {})


async def test_requests_go_through_the_configured_proxy(
    api: FaultServer, make_client: Callable[..., VpcClient]
) -> None:
    async with make_http_client(proxy=api.url) as proxied:
        client = make_client(http=proxied, endpoint="http://vpc.{region_id}.example")
        await client.call(ACTION, {"VpnGatewayId": "vpn-1"})

    [request] = api.seen
    assert request.path.startswith("http://vpc.cn-hangzhou.example/?")
    assert request.headers["host"] == "vpc.cn-hangzhou.example"
    assert request.params["VpnGatewayId"] == "vpn-1"


# --- against the simulator ----------------------------------------------------------------


@pytest.fixture
async def simulator(clock: FakeClock) -> AsyncIterator[SimulatorServer]:
    """The demo fleet on loopback, on the same fake wall clock as the client (dates,
    throttling windows and diagnoses follow it)."""
    async with SimulatorServer(Simulator(demo_scenario(), clock=clock.time)) as server:
        yield server


@pytest.fixture
def sim_client(
    simulator: SimulatorServer, make_client: Callable[..., VpcClient], clock: FakeClock
) -> Callable[..., VpcClient]:
    def make(**overrides: Any) -> VpcClient:
        settings: dict[str, Any] = {
            "endpoint": simulator.url,
            "credentials": CountingCredentials(
                Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
            ),
            "budgets": RateBudgets(clock=clock.monotonic, sleep=clock.sleep),
            **overrides,
        }
        return make_client(**settings)

    return make


async def test_the_simulator_accepts_our_signature_and_serves_the_demo_diagnosis(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient]
) -> None:
    result = await sim_client().get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz1healthy")

    assert result["VpnGatewayId"] == "vpn-hz1healthy"
    assert len(result["DiagnoseResult"]) == 7
    [request] = simulator.simulator.requests
    assert (request.action, request.signature_version, request.status) == (
        "GetVpnGatewayDiagnoseResult",
        "v3",
        200,
    )
    assert request.params == {"RegionId": "cn-hangzhou", "VpnGatewayId": "vpn-hz1healthy"}


async def test_odd_characters_pass_the_simulators_signature_check(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient]
) -> None:
    odd = "a b+c/d*e~f%g&h=i;ü☃'()!"

    result = await sim_client().describe_vpn_gateways(vpc_id=odd, tags={odd: odd, "env": "demo"})

    assert result["TotalCount"] == 0
    [request] = simulator.simulator.requests
    assert request.status == 200
    assert request.params["VpcId"] == odd
    assert request.params["Tag.1.Key"] == odd


async def test_an_sts_credential_is_accepted(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient]
) -> None:
    simulator.simulator.add_key_pair("STS.id", "sts-secret", security_token="sts-token")
    credentials = CountingCredentials(Credential("STS.id", "sts-secret", "sts-token"))

    result = await sim_client(credentials=credentials).describe_vpn_gateways(tags={"env": "demo"})

    assert result["TotalCount"] == 4  # the demo fleet's cn-hangzhou gateways


async def test_a_wrong_secret_is_signature_does_not_match_and_not_retried(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient], metrics: SelfMetrics
) -> None:
    credentials = CountingCredentials(Credential(DEMO_ACCESS_KEY_ID, "wrong"))

    with pytest.raises(CloudError) as caught:
        await sim_client(credentials=credentials).describe_vpn_gateways()

    assert (caught.value.status, caught.value.code) == (400, "SignatureDoesNotMatch")
    assert caught.value.request_id
    assert len(simulator.simulator.requests) == 1
    assert failures(metrics, "SignatureDoesNotMatch", "DescribeVpnGateways") == 1


async def test_a_gateway_without_diagnosis_is_a_not_found_answer(
    sim_client: Callable[..., VpcClient],
) -> None:
    with pytest.raises(CloudError) as caught:
        await sim_client().get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz4nodiag")

    assert (caught.value.status, caught.value.code) == (404, "InvalidVpnGatewayId.NotFound")


async def test_the_simulators_throttling_is_retried_after_its_retry_after(
    simulator: SimulatorServer,
    sim_client: Callable[..., VpcClient],
    clock: FakeClock,
    metrics: SelfMetrics,
) -> None:
    simulator.simulator.faults.add(Fault.throttle(action=ACTION, retry_after_ms=1500, times=1))

    await sim_client(rand=lambda: 0.0).get_vpn_gateway_diagnose_result(
        vpn_gateway_id="vpn-hz1healthy"
    )

    assert [r.code for r in simulator.simulator.requests] == ["Throttling.User", None]
    assert sum(clock.sleeps) >= 1.5
    assert failures(metrics, "Throttling.User") == 1


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Fault.reset(action=ACTION, times=1), NetworkError, "NetworkError"),
        (Fault.timeout(action=ACTION, times=1), ApiTimeout, "Timeout"),
        (Fault.html(action=ACTION, times=1), InvalidResponse, "InvalidResponse"),
        (Fault.error(status=503, action=ACTION, times=1), CloudError, "ServiceUnavailable"),
        (
            Fault.error("VpnGateway.Configuring", action=ACTION, times=1),
            CloudError,
            "VpnGateway.Configuring",
        ),
    ],
    ids=["reset", "timeout", "html-502", "503", "configuring"],
)
async def test_the_simulators_transient_faults_are_retried(
    simulator: SimulatorServer,
    sim_client: Callable[..., VpcClient],
    metrics: SelfMetrics,
    fault: Fault,
    error: type[Exception],
    code: str,
) -> None:
    simulator.simulator.faults.add(fault)

    result = await sim_client(timeout=0.2).get_vpn_gateway_diagnose_result(
        vpn_gateway_id="vpn-hz1healthy"
    )

    assert result["VpnGatewayId"] == "vpn-hz1healthy"
    assert requests_total(metrics) == 2
    assert failures(metrics, code) == 1


async def test_the_simulators_truncated_json_is_an_invalid_response(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient]
) -> None:
    simulator.simulator.faults.add(Fault.truncated_json(action=ACTION))

    with pytest.raises(InvalidResponse):
        await sim_client().get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz1healthy")

    assert len(simulator.simulator.requests) == 1


async def test_the_default_budget_is_never_throttled_by_the_published_limit(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    client = sim_client()
    started = clock.monotonic()

    for _ in range(150):
        await client.get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz1healthy")

    codes = [request.code for request in simulator.simulator.requests]
    assert codes == [None] * 150
    assert clock.monotonic() - started == pytest.approx(149 * 60 / 96)


async def test_a_budget_above_the_limit_is_slowed_by_throttling_and_never_hammers(
    simulator: SimulatorServer, sim_client: Callable[..., VpcClient], clock: FakeClock
) -> None:
    budgets = RateBudgets({ACTION: (240, 60.0)}, clock=clock.monotonic, sleep=clock.sleep)
    client = sim_client(budgets=budgets)

    for _ in range(300):
        await client.get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz1healthy")

    codes = [request.code for request in simulator.simulator.requests]
    assert 1 <= codes.count("Throttling.User") <= 5
    assert client.rate_per_second(ACTION) < budgets.rate_per_second(ACTION)
