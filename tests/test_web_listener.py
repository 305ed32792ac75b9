"""Web security of both listeners, over real TLS on loopback: server and mutual TLS (a
client certificate from an untrusted CA is refused), the minimum TLS version, basic auth,
response headers; and what one client may hold of a listener: header and body sizes, a
client that says nothing, one that sends its request a byte at a time (slowloris), one that
never reads its answer, and too many connections.

Timeouts are production values on the real listeners (checked by name) and short ones on
the same `Listener` class for the behaviour, so every wait is bounded and brief.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.types import Receive, Scope, Send

from exporter.admin.server import AdminServer
from exporter.app import Exporter, ListenSettings
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.authentication import secure_app
from exporter.web.listener import Limits, Listener
from exporter.web.web_config import WebConfig, load_web_config
from tests.admin_harness import PASSWORD, PASSWORD_HASH, USER, admin_config, routes_scenario
from tests.pki import Pki, make_pki

BOUND = 20.0
"""Generous: proves something happens at all, never how fast."""
HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "deny",
}
REFUSED = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def web_config_file(
    directory: Path, pki: Pki, client_auth: str = "RequireAndVerifyClientCert", **tls: str
) -> Path:
    document: dict[str, Any] = {
        "tls_server_config": {
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            "client_auth_type": client_auth,
            **({"client_ca_file": str(pki.ca)} if client_auth != "NoClientCert" else {}),
            **tls,
        },
        "http_server_config": {"headers": HEADERS},
        "basic_auth_users": {USER: PASSWORD_HASH},
    }
    path = directory / f"web-{client_auth}.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.asynccontextmanager
async def metrics_listener(web_config: WebConfig) -> AsyncIterator[int]:
    """The real exporter's metrics listener with `web_config`; yields its port."""
    simulator = Simulator(routes_scenario(), throttling=False)
    async with SimulatorServer(simulator) as server:
        exporter = Exporter(
            admin_config(server.url, enabled=False),
            listen=ListenSettings(address="127.0.0.1:0", web_config=web_config),
            metrics=SelfMetrics(),
        )
        await exporter.start()
        try:
            yield exporter.listener.port
        finally:
            await exporter.stop()


@contextlib.asynccontextmanager
async def admin_listener(web_config: WebConfig) -> AsyncIterator[int]:
    """The real admin listener with `web_config`; yields its port."""
    simulator = Simulator(routes_scenario(), throttling=False)
    async with SimulatorServer(simulator) as server:
        metrics = SelfMetrics()
        exporter = Exporter(
            admin_config(server.url), listen=ListenSettings("127.0.0.1:0"), metrics=metrics
        )
        admin = AdminServer(
            exporter.config, web_config, exporter.region_client, metrics, "127.0.0.1:0"
        )
        await admin.start()
        try:
            yield admin.port
        finally:
            await admin.stop()
            await exporter.http.aclose()


LISTENERS = {
    "metrics": (metrics_listener, "/metrics"),
    "admin": (admin_listener, "/api/v1/openapi.json"),
}


async def get(port: int, path: str, context: ssl.SSLContext, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(verify=context, timeout=BOUND) as http:
        return await http.get(f"https://localhost:{port}{path}", **kwargs)


# --- TLS, mutual TLS, basic auth, headers ---------------------------------------------------


@pytest.mark.parametrize("listener", LISTENERS)
async def test_mutual_tls_with_basic_auth_serves_a_trusted_client_with_the_headers(
    listener: str, pki: Pki, tmp_path: Path
) -> None:
    serve, path = LISTENERS[listener]
    async with serve(load_web_config(web_config_file(tmp_path, pki))) as port:
        response = await get(port, path, pki.client_context(), auth=(USER, PASSWORD))

        assert response.status_code == 200
        for name, value in HEADERS.items():
            assert response.headers[name] == value
        unauthenticated = await get(port, path, pki.client_context())
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["www-authenticate"].startswith("Basic")
        wrong = await get(port, path, pki.client_context(), auth=(USER, "not it"))
        assert wrong.status_code == 401


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("cert", [None, "foreign"])
async def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(
    listener: str, cert: str | None, pki: Pki, tmp_path: Path
) -> None:
    serve, path = LISTENERS[listener]
    async with serve(load_web_config(web_config_file(tmp_path, pki))) as port:
        with pytest.raises(REFUSED):
            await get(port, path, pki.client_context(cert=cert), auth=(USER, PASSWORD))
        # The listener is still there for the next, trusted client.
        response = await get(port, path, pki.client_context(), auth=(USER, PASSWORD))
        assert response.status_code == 200


@pytest.mark.parametrize("listener", LISTENERS)
async def test_optional_client_certificates_still_refuse_an_untrusted_one(
    listener: str, pki: Pki, tmp_path: Path
) -> None:
    serve, path = LISTENERS[listener]
    config = load_web_config(web_config_file(tmp_path, pki, "VerifyClientCertIfGiven"))
    async with serve(config) as port:
        none = await get(port, path, pki.client_context(cert=None), auth=(USER, PASSWORD))
        assert none.status_code == 200
        with pytest.raises(REFUSED):
            await get(port, path, pki.client_context(cert="foreign"), auth=(USER, PASSWORD))


@pytest.mark.parametrize("listener", LISTENERS)
async def test_the_minimum_tls_version_refuses_older_clients(
    listener: str, pki: Pki, tmp_path: Path
) -> None:
    serve, path = LISTENERS[listener]
    config = load_web_config(web_config_file(tmp_path, pki, "NoClientCert", min_version="TLS13"))
    async with serve(config) as port:
        old = pki.client_context(cert=None, maximum=ssl.TLSVersion.TLSv1_2)
        with pytest.raises(REFUSED):
            await get(port, path, old, auth=(USER, PASSWORD))
        current = await get(port, path, pki.client_context(cert=None), auth=(USER, PASSWORD))
        assert current.status_code == 200


@pytest.mark.parametrize("listener", LISTENERS)
async def test_plain_http_to_a_tls_listener_gets_no_answer(
    listener: str, pki: Pki, tmp_path: Path
) -> None:
    serve, path = LISTENERS[listener]
    web = load_web_config(web_config_file(tmp_path, pki, "NoClientCert"))
    async with serve(web) as port, httpx.AsyncClient(timeout=BOUND) as http:
        with contextlib.suppress(*REFUSED):
            answer = await http.get(f"http://127.0.0.1:{port}{path}", auth=(USER, PASSWORD))
            assert answer.status_code == 400  # never the page itself


# --- sizes ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def plain(listener: str) -> AsyncIterator[tuple[int, str]]:
    serve, path = LISTENERS[listener]
    web = WebConfig.model_validate({"basic_auth_users": {USER: PASSWORD_HASH}})
    async with serve(web) as port:
        yield port, path


@pytest.mark.parametrize("listener", LISTENERS)
async def test_headers_beyond_64_kib_are_refused_and_the_listener_goes_on(listener: str) -> None:
    async with plain(listener) as (port, path), httpx.AsyncClient(timeout=BOUND) as http:
        url = f"http://127.0.0.1:{port}{path}"
        with contextlib.suppress(*REFUSED):
            huge = await http.get(url, headers={"X-Padding": "a" * 70_000}, auth=(USER, PASSWORD))
            assert huge.status_code == 400
        big = await http.get(url, headers={"X-Padding": "a" * 50_000}, auth=(USER, PASSWORD))
        assert big.status_code == 200


async def test_the_metrics_listener_refuses_a_body_without_reading_it() -> None:
    async with plain("metrics") as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n"
                b"Authorization: Basic " + basic() + b"\r\n\r\n" + b"a" * 65536
            )
            status = await asyncio.wait_for(reader.readline(), BOUND)
            assert status.startswith(b"HTTP/1.1 405")  # 1 GiB announced, 64 KiB sent, answered
        finally:
            writer.close()


async def test_the_admin_listener_refuses_a_body_over_its_cap() -> None:
    async with plain("admin") as (port, _), httpx.AsyncClient(timeout=BOUND) as http:
        answer = await http.post(
            f"http://127.0.0.1:{port}/api/v1/vpn-connections/vco-cen1/routes",
            content=b"{" + b" " * 20_000 + b"}",
            headers={"Content-Type": "application/json"},
            auth=(USER, PASSWORD),
        )
        assert answer.status_code == 413


def basic() -> bytes:
    import base64

    return base64.b64encode(f"{USER}:{PASSWORD}".encode())


# --- slow and idle clients ------------------------------------------------------------------


async def test_both_real_listeners_bound_their_clients() -> None:
    defaults = Limits()
    assert defaults.max_header_bytes == 64 * 1024
    assert defaults.read_timeout <= 10 and defaults.write_timeout <= 30
    assert defaults.keep_alive_timeout <= 30 and defaults.max_connections <= 1024
    exporter = Exporter(admin_config("http://127.0.0.1:9"), metrics=SelfMetrics())
    admin = AdminServer(
        exporter.config,
        WebConfig.model_validate({"basic_auth_users": {USER: PASSWORD_HASH}}),
        exporter.region_client,
        exporter.metrics,
        "127.0.0.1:0",
    )
    try:
        assert exporter.listener.limits == defaults
        assert admin.listener.limits == defaults
    finally:
        await exporter.http.aclose()


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello\n"})


async def endless(scope: Scope, receive: Receive, send: Send) -> None:
    """An answer far bigger than any socket buffer."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"x" * 65536
    for _ in range(2000):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


SHORT = Limits(read_timeout=0.3, write_timeout=0.3, keep_alive_timeout=0.3, max_connections=4)


@contextlib.asynccontextmanager
async def guarded(app: Any = hello, limits: Limits = SHORT) -> AsyncIterator[Listener]:
    web = WebConfig()
    listener = Listener(secure_app(app, web), "127.0.0.1:0", limits=limits)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (within the generous bound)."""
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(reader.read(), BOUND)
    return reader.at_eof() or True


async def test_a_client_that_says_nothing_is_disconnected() -> None:
    async with guarded() as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await reader.read() == b""  # closed, without an answer
        writer.close()


async def test_a_slowloris_client_is_disconnected_while_others_are_served() -> None:
    async with guarded() as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
        disconnected = False
        for byte in request:  # bounded: the request would take 500 s at this pace
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                    disconnected = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                disconnected = True
                break
        assert disconnected
        writer.close()
        async with httpx.AsyncClient(timeout=BOUND) as http:
            assert (await http.get(f"http://127.0.0.1:{listener.port}/")).text == "hello\n"


async def test_a_client_that_never_reads_its_answer_is_dropped() -> None:
    async with guarded(endless) as listener:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", listener.port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            state = listener._server.server_state
            deadline = time.monotonic() + BOUND
            while state.tasks or state.connections:
                assert time.monotonic() < deadline, "the stalled answer is still held"
                await asyncio.sleep(0.02)
        finally:
            sock.close()


async def test_an_idle_kept_alive_connection_is_closed() -> None:
    async with guarded() as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"hello\n")).startswith(b"HTTP/1.1 200")
        assert await closed(reader)
        writer.close()


async def test_connections_beyond_the_limit_are_answered_503_until_slots_free_up() -> None:
    async with guarded(limits=Limits(read_timeout=1.0, max_connections=4)) as listener:
        idle = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(4)]
        async with httpx.AsyncClient(timeout=BOUND) as http:
            url = f"http://127.0.0.1:{listener.port}/"
            assert (await http.get(url)).status_code == 503
            for reader, _ in idle:  # the read timeout frees their slots
                assert await closed(reader)
            deadline = time.monotonic() + BOUND
            while (answer := await http.get(url)).status_code == 503:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert answer.text == "hello\n"
        for _, writer in idle:
            writer.close()
