"""What one client, or many, can hold of a listener (issue 12, defect 2), over real sockets.

The attacker's connections come from 127.0.0.2, the scraper's from 127.0.0.1 (both
loopback on Linux). In-process tests run the real listeners with short limits where a
deadline matters; the process tests run the exporter's command line under a low open-file
limit, as a machine with the usual 1,024 would, against the simulator served from a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.app import Exporter, ListenSettings
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.acceptor import RESERVED_FDS, SocketBudget
from exporter.web.authentication import secure_app
from exporter.web.listener import Limits, Listener
from exporter.web.web_config import WebConfig, load_web_config
from tests.admin_harness import admin_config, routes_scenario
from tests.demo_harness import free_port
from tests.pki import Pki, make_pki
from tests.process_harness import BOUND, config_document, simulator_thread, value, write_yaml
from tests.prometheus_harness import JOB, PromQL, running_prometheus

ATTACKER = "127.0.0.2"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
"""What Prometheus 2.x sends when it scrapes."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def open_files_for(count: int) -> None:
    """Let this test process hold `count` more sockets (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(os.listdir("/proc/self/fd")) + count + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def silent_connections(port: int, count: int, source: str = ATTACKER) -> list[socket.socket]:
    """`count` connections from `source` that never send a byte."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        held.append(sock)
    return held


def closed_by_server(sockets: list[socket.socket], expected: int) -> int:
    """How many of `sockets` the server has closed (an EOF or a reset), waiting up to the
    generous bound for `expected` of them, then a moment for any more."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + BOUND
    settle: float | None = None
    while time.monotonic() < (settle or deadline):
        open_ = [sock for sock in sockets if sock not in closed]
        readable, _, _ = select.select(open_, [], [], 0.05) if open_ else ([], [], [])
        for sock in readable:
            try:
                if sock.recv(1) == b"":
                    closed.add(sock)
            except ConnectionError:
                closed.add(sock)
        if len(closed) >= expected and settle is None:
            settle = time.monotonic() + 0.3
    return len(closed)


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


@contextlib.asynccontextmanager
async def metrics_listener(web_config: WebConfig | None = None) -> AsyncIterator[int]:
    """The real exporter's metrics listener (production limits); yields its port."""
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


async def scrapes(url: str, count: int, **client: Any) -> list[int]:
    async with httpx.AsyncClient(timeout=BOUND, **client) as http:
        return [
            (await http.get(url, headers={"Accept": PROMETHEUS_ACCEPT})).status_code
            for _ in range(count)
        ]


async def test_one_address_holding_600_connections_does_not_stop_scrapes_from_another() -> None:
    open_files_for(700)
    async with metrics_listener() as port:
        held = silent_connections(port, 600)
        try:
            answers = await scrapes(f"http://127.0.0.1:{port}/metrics", 20)
            assert answers == [200] * 20
            # All but the per-address share were closed as soon as they were accepted.
            limit = Limits().max_connections_per_address
            assert await asyncio.to_thread(closed_by_server, held, 600 - limit) == 600 - limit
        finally:
            close_all(held)


async def test_prometheus_keeps_scraping_while_one_address_holds_600_connections(
    tmp_path: Path,
) -> None:
    open_files_for(700)
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    async with metrics_listener() as port:
        # Prometheus scrapes every second (1 s timeout); nothing listens for its alerts.
        with running_prometheus(rules, [port], "http://127.0.0.1:9", tmp_path) as url:
            promql = PromQL(url)
            await promql.until(f'up{{job="{JOB}"}} == 1')
            held = silent_connections(port, 600)
            try:
                await asyncio.sleep(6.0)  # the attacker's connections are held for 10 s
                window = f'up{{job="{JOB}"}}[5s]'
                scrapes = await promql.query(f"count_over_time({window})")
                lowest = await promql.query(f"min_over_time({window})")
            finally:
                close_all(held)
    assert int(scrapes[0]["value"][1]) >= 3
    assert float(lowest[0]["value"][1]) == 1  # no scrape in the window failed


async def test_a_tls_handshake_that_never_finishes_is_dropped(pki: Pki, tmp_path: Path) -> None:
    web = WebConfig.model_validate(
        {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}}
    )
    limits = Limits(handshake_timeout=0.3, read_timeout=60.0)
    listener = Listener(secure_app(hello, web), "127.0.0.1:0", web.tls_settings(), limits)
    await listener.start()
    try:
        held = silent_connections(listener.port, 3)
        try:
            assert await asyncio.to_thread(closed_by_server, held, 3) == 3
        finally:
            close_all(held)
        context = pki.client_context(cert=None)
        async with httpx.AsyncClient(verify=context, timeout=BOUND) as http:
            assert (await http.get(f"https://localhost:{listener.port}/")).text == "hello\n"
    finally:
        await listener.stop()


async def test_handshakes_count_against_the_address_and_free_their_slot(
    pki: Pki,
) -> None:
    web = WebConfig.model_validate(
        {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}}
    )
    limits = Limits(max_connections_per_address=4, handshake_timeout=60.0)
    listener = Listener(secure_app(hello, web), "127.0.0.1:0", web.tls_settings(), limits)
    await listener.start()
    try:
        held = silent_connections(listener.port, 10)
        try:
            # Four handshakes stay pending; the other six are closed at once.
            assert await asyncio.to_thread(closed_by_server, held, 6) == 6
        finally:
            close_all(held)
        # Their slots come back when the client gives up: the address is served again.
        context = pki.client_context(cert=None)
        transport = httpx.AsyncHTTPTransport(verify=context, local_address=ATTACKER)
        async with httpx.AsyncClient(transport=transport, timeout=BOUND) as http:
            assert (await http.get(f"https://localhost:{listener.port}/")).text == "hello\n"
    finally:
        await listener.stop()


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello\n"})


async def test_a_full_budget_leaves_connections_in_the_backlog_until_one_closes() -> None:
    budget = SocketBudget(2)
    listener = Listener(secure_app(hello, WebConfig()), "127.0.0.1:0", budget=budget)
    await listener.start()
    try:
        held = silent_connections(listener.port, 2, source="127.0.0.3")
        async with httpx.AsyncClient(timeout=BOUND) as http:
            url = f"http://127.0.0.1:{listener.port}/"
            pending = asyncio.ensure_future(http.get(url))
            while budget.held < 2:
                await asyncio.sleep(0.01)
            assert not pending.done()
            assert budget.held == 2  # the scrape waits in the kernel's backlog
            close_all(held)
            assert (await pending).text == "hello\n"
    finally:
        await listener.stop()


async def test_refused_client_certificates_are_logged_once_then_summed_up(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    document = {
        "tls_server_config": {
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(pki.ca),
        }
    }
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(document))
    caplog.set_level(logging.INFO, logger="exporter.web.acceptor")
    async with metrics_listener(load_web_config(path)) as port:
        for _ in range(5):
            with contextlib.suppress(httpx.TransportError, ssl.SSLError):
                foreign = pki.client_context(cert="foreign")
                await scrapes(f"https://localhost:{port}/metrics", 1, verify=foreign)
        answers = await scrapes(f"https://localhost:{port}/metrics", 1, verify=pki.client_context())
        assert answers == [200]
        refused = [r for r in caplog.records if r.getMessage() == "client certificate refused"]
        assert len(refused) == 1
        assert refused[0].fields["remote_addr"] == "127.0.0.1"  # type: ignore[attr-defined]
    summaries = [r for r in caplog.records if r.getMessage() == "client certificates refused"]
    assert [r.fields["count"] for r in summaries] == [4]  # type: ignore[attr-defined]


async def test_running_out_of_file_descriptors_logs_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    listener = Listener(secure_app(hello, WebConfig()), "127.0.0.1:0")
    await listener.start()
    clients = [socket.socket() for _ in range(20)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        # No new descriptor can be opened from here: every accept fails with EMFILE.
        open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
        lowest_free = min(set(range(len(open_fds) + 1)) - open_fds)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        for client in clients:
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", listener.port))
        await asyncio.sleep(1.5)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        close_all(clients)
    out_of = [r for r in caplog.records if "out of" in r.getMessage()]
    assert len(out_of) == 1, [r.getMessage() for r in out_of]
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.WARNING)
    # Descriptors free again: the listener serves.
    async with httpx.AsyncClient(timeout=BOUND) as http:
        assert (await http.get(f"http://127.0.0.1:{listener.port}/")).text == "hello\n"
    await listener.stop()


# --- the command line under a low open-file limit ----------------------------------------


@contextlib.contextmanager
def exporter_with_open_files(
    directory: Path, endpoint: str, open_files: int, *extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """`python -m exporter` polling every second, its open-file limit `open_files` (soft and
    hard); yields the process, its port and its log."""
    document = config_document(endpoint)
    document["poll"] = {"interval": "1s"}
    config = write_yaml(directory / "config.yml", document)
    port = free_port()
    log = directory / "exporter.log"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log.open("wb") as sink:
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
                *extra,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
    try:
        deadline = time.monotonic() + BOUND
        while "exporter started" not in log.read_text(errors="replace"):
            assert popen.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the exporter did not start"
            time.sleep(0.05)
        yield popen, port, log
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def diagnose_calls(simulator: Simulator) -> int:
    return sum(1 for r in simulator.requests if r.action == "GetVpnGatewayDiagnoseResult")


def test_1100_handshakes_from_one_address_leave_scrapes_and_polls_working(
    tmp_path: Path, pki: Pki
) -> None:
    open_files_for(1200)
    web = write_yaml(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}},
    )
    with (
        simulator_thread() as (simulator, endpoint),
        exporter_with_open_files(tmp_path, endpoint, 1024, f"--web.config.file={web}") as (
            _,
            port,
            log,
        ),
    ):
        held = silent_connections(port, 1100)
        try:
            before = diagnose_calls(simulator)
            context = pki.client_context(cert=None)
            with httpx.Client(verify=context, timeout=BOUND) as http:
                answers = []
                for _ in range(10):
                    answer = http.get(
                        f"https://localhost:{port}/metrics", headers={"Accept": PROMETHEUS_ACCEPT}
                    )
                    answers.append(answer.status_code)
                    time.sleep(0.2)
                assert answers == [200] * 10
                deadline = time.monotonic() + BOUND
                while diagnose_calls(simulator) < before + 2:  # polls go on meanwhile
                    assert time.monotonic() < deadline, "polling stopped"
                    time.sleep(0.05)
                text = http.get(f"https://localhost:{port}/metrics").text
        finally:
            close_all(held)
        output = log.read_text(errors="replace")
        assert "Too many open files" not in output
        assert "Traceback" not in output
        assert value(text, "aliyun_vpn_poll_success", vpn_gateway_id="vpn-hzadmin") == 1


def test_many_addresses_filling_the_listeners_budget_never_starve_polling(
    tmp_path: Path,
) -> None:
    open_files_for(800)
    open_files = RESERVED_FDS + 128
    with (
        simulator_thread() as (simulator, endpoint),
        exporter_with_open_files(tmp_path, endpoint, open_files) as (_, port, log),
    ):
        held: list[socket.socket] = []
        try:
            for address in range(2, 22):  # 20 addresses x 32 connections: over the budget
                with contextlib.suppress(OSError):
                    held += silent_connections(port, 32, source=f"127.0.0.{address}")
            before = diagnose_calls(simulator)
            deadline = time.monotonic() + BOUND
            while diagnose_calls(simulator) < before + 3:
                assert time.monotonic() < deadline, "polling stopped"
                time.sleep(0.05)
        finally:
            close_all(held)
        output = log.read_text(errors="replace")
        assert "Too many open files" not in output
        assert "poll failed" not in output
        assert "Traceback" not in output
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=BOUND).text
        assert value(text, "aliyun_vpn_poll_success", vpn_gateway_id="vpn-hzadmin") == 1
