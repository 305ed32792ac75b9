"""The admin API as users meet it, for tests: the simulator over HTTP, the exporter's VPC
clients pointed at it, and an `AdminServer` on a loopback port with an httpx client.

The scenario has connections attached to a transit router (`CEN`) and one attached to a
VPN gateway (`VPNGW`), a financially locked one, one still `attaching`, and a connection in
a region the exporter's config does not cover.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import httpx

from exporter.admin.server import AdminServer
from exporter.admin.settings import AdminSettings
from exporter.clock import Clock
from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.keys import Credential
from exporter.cloud.ratelimit import RateBudgets
from exporter.cloud.retry import RetryPolicy
from exporter.config.model import Config
from exporter.simulator.journal import RecordedRequest
from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.listener import Limits
from exporter.web.web_config import WebConfig

KEY_ID = "admin-test-key"
KEY_SECRET = "admin-test-secret-never-logged"
USER = "alice"
PASSWORD = "correct horse battery staple"
TOKEN_NAME = "ci-pipeline"
TOKEN = "0123456789abcdef0123456789abcdef-ci-token"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

REGION = "cn-hangzhou"
OTHER_REGION = "ap-southeast-1"
CONNECTION = "vco-cen1"
"""Attached to a transit router; its VPC side is 10.1.0.0/16."""
SECOND_CONNECTION = "vco-cen2"
VPNGW_CONNECTION = "vco-vpngw"
ATTACHING_CONNECTION = "vco-attaching"
LOCKED_CONNECTION = "vco-locked"
FOREIGN_CONNECTION = "vco-sgcen"
"""In a region the exporter does not cover."""
ROUTE = {
    "region_id": REGION,
    "route_dest": "192.168.10.0/24",
    "next_hop": CONNECTION,
    "weight": 100,
}

FAST = AdminSettings(
    deadline=5.0,
    wait_timeout=5.0,
    poll_interval=0.005,
    retry_base=0.001,
    retry_cap=0.01,
    retry_after=2.0,
    stop_grace=2.0,
)
"""Production logic with test-sized waits, on the real clock."""

FAKE_TIME = dataclasses.replace(
    FAST, poll_interval=1.0, retry_base=1.0, retry_cap=4.0, deadline=20.0, wait_timeout=5.0
)
"""For a fake clock, whose sleeps take no time: production-like backoff and polling, so a
wait or a deadline runs out after a handful of calls instead of thousands."""


def _connection(
    connection_id: str, subnet: int, attach_type: str = "CEN", **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "id": connection_id,
        "name": f"{connection_id}-ipsec",
        "local_subnet": f"10.{subnet}.0.0/16",
        "remote_subnet": f"192.168.{subnet}.0/24",
        "attach_type": attach_type,
        **extra,
    }
    if attach_type == "CEN":
        spec["transit_router_id"] = "tr-admintest"
    return spec


def routes_scenario(**route_settings: Any) -> Scenario:
    """The admin tests' fleet; `route_settings` override the scenario's `routes:`."""
    return Scenario.model_validate(
        {
            "key_pairs": [{"access_key_id": KEY_ID, "access_key_secret": KEY_SECRET}],
            "routes": {"settle_seconds": 0.0, **route_settings},
            "gateways": [
                {
                    "id": "vpn-hzadmin",
                    "name": "hz-admin",
                    "region_id": REGION,
                    "vpc_id": "vpc-hzadmin",
                    "connections": [
                        _connection(CONNECTION, 1),
                        _connection(SECOND_CONNECTION, 2),
                        _connection(VPNGW_CONNECTION, 3, "VPNGW"),
                        _connection(ATTACHING_CONNECTION, 4, state="attaching"),
                    ],
                },
                {
                    "id": "vpn-hzlocked",
                    "name": "hz-locked",
                    "region_id": REGION,
                    "vpc_id": "vpc-hzlocked",
                    "business_status": "FinancialLocked",
                    "connections": [_connection(LOCKED_CONNECTION, 5)],
                },
                {
                    "id": "vpn-sgadmin",
                    "name": "sg-admin",
                    "region_id": OTHER_REGION,
                    "vpc_id": "vpc-sgadmin",
                    "connections": [_connection(FOREIGN_CONNECTION, 6)],
                },
            ],
        }
    )


def admin_config(
    endpoint: str,
    *,
    allowed_connections: tuple[str, ...] = (),
    allowed_destinations: tuple[str, ...] = (),
    enabled: bool = True,
) -> Config:
    """Admin enabled; one target, so `cn-hangzhou` is the only configured region."""
    return Config.model_validate(
        {
            "credentials": {
                "default": {
                    "source": "access_key",
                    "access_key_id": KEY_ID,
                    "access_key_secret": KEY_SECRET,
                }
            },
            "api": {"endpoint": endpoint, "timeout": "5s"},
            "targets": [{"region_id": REGION, "gateways": ["vpn-hzadmin"]}],
            "admin": {
                "enabled": enabled,
                "allowed_connections": list(allowed_connections),
                "allowed_destinations": list(allowed_destinations),
            },
        }
    )


def web_config(directory: Path, *, basic: bool = True, bearer: bool = True) -> WebConfig:
    """A web config with the test user and/or token (the token file goes in `directory`)."""
    data: dict[str, Any] = {}
    if basic:
        data["basic_auth_users"] = {USER: PASSWORD_HASH}
    if bearer:
        tokens = directory / "tokens"
        tokens.write_text(f"# admin API callers\n{TOKEN_NAME}:{TOKEN}\n")
        data["bearer_tokens_file"] = str(tokens)
    return WebConfig.model_validate(data)


def basic_auth(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer_auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class AdminHarness:
    """A running simulator and admin API, and what tests look at."""

    simulator: Simulator
    server: AdminServer
    http: httpx.AsyncClient
    """Talks to the admin listener, authenticated as `USER` unless a test says otherwise."""
    metrics: SelfMetrics

    def calls(self, action: str) -> list[RecordedRequest]:
        return [r for r in self.simulator.requests if r.action == action]

    def creates(self) -> list[RecordedRequest]:
        return self.calls("CreateVcoRouteEntry")

    def cloud_calls(self) -> list[RecordedRequest]:
        return list(self.simulator.requests)

    async def until_calls(self, action: str, count: int) -> None:
        """Return once the simulator has seen `count` calls of `action` (10 s at most)."""
        async with asyncio.timeout(10):
            while len(self.calls(action)) < count:
                await asyncio.sleep(0.002)

    def routes_of(self, connection_id: str) -> list[tuple[str, str, int]]:
        from exporter.simulator.routes import RouteTable

        table = self.simulator.state.extension(RouteTable)
        return [(e.route_dest, e.next_hop, e.weight) for e in table.of(connection_id)]

    def metric(self, name: str, labels: Mapping[str, str]) -> float:
        value = self.metrics.registry.get_sample_value(name, dict(labels))
        return 0.0 if value is None else value

    async def create(
        self,
        body: Mapping[str, Any] | None = None,
        connection_id: str = CONNECTION,
        **kwargs: Any,
    ) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/vpn-connections/{connection_id}/routes",
            json=dict(ROUTE if body is None else body),
            **kwargs,
        )


@contextlib.asynccontextmanager
async def running_admin(
    tmp_path: Path,
    *,
    scenario: Scenario | None = None,
    settings: AdminSettings | None = None,
    clock: Clock | None = None,
    simulator_clock: Any = None,
    throttling: bool = False,
    allowed_connections: tuple[str, ...] = (),
    allowed_destinations: tuple[str, ...] = (),
    web: WebConfig | None = None,
    client_timeout: float = 5.0,
    simulator: Simulator | None = None,
    limits: Limits | None = None,
) -> AsyncIterator[AdminHarness]:
    """Simulator → VPC clients → AdminServer on 127.0.0.1, all over real HTTP.

    `clock` drives the admin API's waits and the VPC clients' backoff (default settings:
    `FAKE_TIME` with a clock, `FAST` without); `simulator` reuses a simulator (and its
    state) from an earlier run, as a restarted exporter would.
    """
    settings = settings or (FAST if clock is None else FAKE_TIME)
    if simulator is None:
        options: dict[str, Any] = {"throttling": throttling}
        if simulator_clock is not None:
            options["clock"] = simulator_clock
        simulator = Simulator(scenario or routes_scenario(), **options)
    metrics = SelfMetrics()
    async with SimulatorServer(simulator) as simulated:
        config = admin_config(
            simulated.url,
            allowed_connections=allowed_connections,
            allowed_destinations=allowed_destinations,
        )
        api_http = make_http_client(timeout=client_timeout)
        budgets = RateBudgets(
            {
                action: (60_000.0, 60.0)
                for action in (
                    "CreateVcoRouteEntry",
                    "DescribeVpnConnections",
                    "DescribeVcoRouteEntries",
                )
            },
            clock=time.monotonic if clock is None else clock.monotonic,
            sleep=asyncio.sleep if clock is None else clock.sleep,
        )
        provider = StaticCredentialsProvider("default", Credential(KEY_ID, KEY_SECRET))
        clients: dict[str, VpcClient] = {}

        def client_of(region_id: str) -> VpcClient:
            if region_id not in clients:
                clients[region_id] = VpcClient(
                    api_http,
                    provider,
                    region_id,
                    budgets=budgets,
                    metrics=metrics,
                    endpoint=simulated.url,
                    retry=RetryPolicy(max_retries=1, backoff_base=0.001, backoff_cap=0.01),
                    timeout=client_timeout,
                    sleep=asyncio.sleep if clock is None else clock.sleep,
                )
            return clients[region_id]

        server = AdminServer(
            config,
            web or web_config(tmp_path),
            client_of,
            metrics,
            "127.0.0.1:0",
            settings=settings,
            clock=clock,
            limits=limits,
        )
        await server.start()
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", headers=basic_auth(), timeout=30
            ) as http:
                yield AdminHarness(simulator, server, http, metrics)
        finally:
            await server.stop()
            await api_http.aclose()


EXAMPLE_CONNECTION = "vco-p0w2jpkhi2eeop6q6"
"""The connection the OpenAPI examples name; the fuzz scenario has it, so example-based
cases reach a real connection."""


def fuzz_scenario() -> Scenario:
    """The admin tests' fleet with room for thousands of routes and the examples'
    connection, for fuzz runs."""
    scenario = routes_scenario(settle_seconds=0.0, connection_quota=10_000, region_quota=10_000)
    gateway = scenario.gateways[0]
    example = gateway.connections[0].model_copy(
        update={"id": EXAMPLE_CONNECTION, "local_subnet": "10.250.0.0/16"}
    )
    gateways = [
        gateway.model_copy(update={"connections": [*gateway.connections, example]}),
        *scenario.gateways[1:],
    ]
    return scenario.model_copy(update={"gateways": gateways})


@contextlib.contextmanager
def admin_in_thread(tmp_path: Path) -> Iterator[AdminHarness]:
    """The admin API and simulator (`fuzz_scenario`, no throttling) served from a thread,
    for synchronous clients (schemathesis in another process, hypothesis tests)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="admin-api", daemon=True)
    thread.start()
    context = running_admin(tmp_path, simulator=Simulator(fuzz_scenario(), throttling=False))
    harness = asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result(timeout=30)
    try:
        yield harness
    finally:
        asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def tunnel_ids(simulator: Simulator, connection_id: str) -> set[str]:
    """The tunnels of a simulated connection (none when it does not exist)."""
    connection = simulator.state.fleet.connection(connection_id)
    return set() if connection is None else {connection.tunnel(i)[0] for i in (1, 2)}
