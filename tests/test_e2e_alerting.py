"""One outage, one page, end to end: the shipped rules (durations shortened sixty-fold) on
Debian's Prometheus, the shipped Alertmanager configuration on a real Alertmanager, and
exporters polling the simulator through failures, each proving what a user's receivers get.

Each test runs its own simulator fleet and exporter on its own scrape port (its own
`instance`), so the tests share one Prometheus and one Alertmanager without meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from exporter.app import Exporter, ListenSettings
from exporter.config.model import Config
from exporter.simulator.faults import Fault, FaultKind
from exporter.simulator.scenario import parse_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.alertmanager_harness import Webhook, running_alertmanager, serving, shipped_config
from tests.demo_harness import STARTUP_BOUND, free_port
from tests.prometheus_harness import PromQL, running_prometheus, scaled_rules

pytestmark = pytest.mark.asyncio(loop_scope="module")
WAIT = 60.0
"""A generous bound for anything to show up: proves it comes, not how fast (the slowest
shortened `for:` here is 30 s)."""
SETTLE = 2.5
"""Two group intervals and more of the test Alertmanager: what was due has been sent."""
KEY = {"access_key_id": "e2e-key-id", "access_key_secret": "e2e-key-secret"}
PORTS = ("tunnels", "discovery", "credentials", "throttling", "killed", "neighbour")


@dataclass
class Stack(PromQL):
    webhook: Webhook
    ports: dict[str, int]

    def sent(self, since: int = 0, **labels: str) -> list[dict[str, Any]]:
        """Notifications to a real receiver (not "null") after the first `since`, carrying
        an alert with these labels."""
        return [
            n
            for n in self.webhook.notifications[since:]
            if n["receiver"] != "null"
            and any(all(a["labels"].get(k) == v for k, v in labels.items()) for a in n["alerts"])
        ]

    async def delivered(self, status: str, since: int = 0, **labels: str) -> dict[str, Any]:
        """The first alert with `status` and these labels in a notification after the first
        `since`, once one comes."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for notification in self.webhook.notifications[since:]:
                for alert in notification["alerts"]:
                    if alert["status"] == status and all(
                        alert["labels"].get(k) == v for k, v in labels.items()
                    ):
                        return dict(alert, receiver=notification["receiver"])
            await asyncio.sleep(0.2)
        raise AssertionError(f"no {status} notification with {labels} within {WAIT}s")

    async def settled(self, instance: str) -> None:
        """Once no alert of `instance` is pending, and what was due has been sent."""
        deadline = time.monotonic() + WAIT
        while await self.query(f'ALERTS{{alertstate="pending",instance="{instance}"}}'):
            assert time.monotonic() < deadline, f"alerts of {instance} still pending"
            await asyncio.sleep(0.2)
        await asyncio.sleep(SETTLE)


@pytest.fixture(scope="module")
def monitoring(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Webhook, dict[str, int]]]:
    work = tmp_path_factory.mktemp("alerting")
    webhook = Webhook()
    ports = {name: free_port() for name in PORTS}
    with (
        serving(webhook) as hook,
        running_alertmanager(shipped_config(hook), work / "am") as alertmanager,
        running_prometheus(scaled_rules(work), list(ports.values()), alertmanager, work) as url,
    ):
        yield url, webhook, ports


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(monitoring: tuple[str, Webhook, dict[str, int]]) -> Stack:
    url, webhook, ports = monitoring
    return Stack(url, webhook, ports)


def _gateway(suffix: str, **fields: Any) -> dict[str, Any]:
    """A healthy gateway `vpn-<suffix>` with one connection `vco-<suffix>`, and `fields`."""
    connection = {"id": f"vco-{suffix}", "name": f"{suffix}-ipsec"}
    connection.update(fields.pop("connection", {}))
    return {
        "id": f"vpn-{suffix}",
        "name": f"{suffix}-gateway",
        "region_id": "cn-hangzhou",
        "vpc_id": f"vpc-{suffix}",
        "connections": [connection],
        **fields,
    }


def _config(endpoint: str, *targets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "credentials": {"default": {"source": "access_key", **KEY}},
        "poll": {"interval": "2s"},
        "api": {"endpoint": endpoint, "timeout": "2s", "max_retries": 1},
        "targets": [{"region_id": "cn-hangzhou", **t} for t in targets],
        **extra,
    }


@contextlib.asynccontextmanager
async def simulating(*gateways: dict[str, Any], **extra: Any) -> AsyncIterator[SimulatorServer]:
    scenario = parse_scenario({"key_pairs": [KEY], "gateways": list(gateways), **extra})
    async with SimulatorServer(Simulator(scenario)) as server:
        try:
            yield server
        finally:
            server.simulator.faults.clear()
            server.simulator.release_hangs()


@contextlib.asynccontextmanager
async def exporting(config: dict[str, Any], port: int) -> AsyncIterator[Exporter]:
    exporter = Exporter(
        Config.model_validate(config),
        listen=ListenSettings(address=f"127.0.0.1:{port}"),
        metrics=SelfMetrics(),
    )
    await exporter.start()
    try:
        yield exporter
    finally:
        await exporter.stop()


def _names(notifications: list[dict[str, Any]]) -> list[str]:
    return sorted(a["labels"]["alertname"] for n in notifications for a in n["alerts"])


async def test_a_connection_with_both_tunnels_down_is_one_notification(stack: Stack) -> None:
    """(c) The connection's critical alert; its tunnels, BGP and health check are muted."""
    port = stack.ports["tunnels"]
    down = "ipsec_sa_not_established"
    gateway = _gateway(
        "tun1",
        connection={
            "status": down,
            "bgp_status": "false",
            "health_check_status": "failed",
            "tunnels": [{"status": down}, {"status": down}],
        },
    )
    async with (
        simulating(gateway) as simulator,
        exporting(_config(simulator.url, {"name": "tunnels", "gateways": ["vpn-tun1"]}), port),
    ):
        instance = f"127.0.0.1:{port}"
        page = await stack.delivered(
            "firing", alertname="AliyunVpnIpsecSaNotEstablished", vpn_connection_id="vco-tun1"
        )
        assert page["receiver"] == "critical"
        # The consequences do fire, muted behind the connection's alert.
        for name in ("AliyunVpnHealthCheckFailed", "AliyunVpnBgpNotEstablished"):
            await stack.until(
                f'ALERTS{{alertname="{name}",alertstate="firing",instance="{instance}"}}'
            )
        await stack.settled(instance)
        assert (
            await stack.query(
                f'ALERTS{{alertname="AliyunVpnTunnelIpsecSaNotEstablished",instance="{instance}"}}'
            )
            == []
        )
        about_it = stack.sent(vpn_connection_id="vco-tun1")
        assert _names(about_it) == ["AliyunVpnIpsecSaNotEstablished"]


async def test_a_discovery_that_matches_nothing_raises_the_zero_gateways_alert(
    stack: Stack,
) -> None:
    """(e) A mistyped tag: the target polls nothing, and says so."""
    port = stack.ports["discovery"]
    gateway = _gateway("disc1", tags={"env": "prod"})
    target = {"name": "mistyped", "discover": {"tags": {"env": "prdo"}, "interval": "2s"}}
    async with simulating(gateway) as simulator, exporting(_config(simulator.url, target), port):
        alert = await stack.delivered(
            "firing", alertname="AliyunVpnTargetNoGateways", target="mistyped"
        )
        assert alert["receiver"] == "warning"
        assert alert["annotations"]["summary"] == "Target mistyped polls no gateway."


async def test_revoked_credentials_keep_a_critical_alert_and_page_once(stack: Stack) -> None:
    """(a) The critical alert does not resolve; one credentials notification arrives; the
    stale data and failing polls it causes are muted behind it."""
    port = stack.ports["credentials"]
    gateway = _gateway("cred1", connection={"status": "ike_sa_not_established"})
    target = {"name": "revoked", "gateways": ["vpn-cred1"]}
    async with simulating(gateway) as simulator, exporting(_config(simulator.url, target), port):
        instance = f"127.0.0.1:{port}"
        await stack.delivered(
            "firing", alertname="AliyunVpnIpsecSaNotEstablished", vpn_gateway_id="vpn-cred1"
        )
        await stack.settled(instance)
        before = len(stack.webhook.notifications)
        simulator.simulator.faults.add(Fault.error("InvalidAccessKeyId.NotFound"))
        credentials = await stack.delivered(
            "firing", alertname="AliyunVpnCredentialsFailing", target="revoked"
        )
        assert credentials["receiver"] == "critical"
        # The data does go stale, and the polls and listings do fail: all muted.
        for name in ("AliyunVpnDataStale", "AliyunVpnPollFailing", "AliyunVpnListingFailing"):
            await stack.until(f'ALERTS{{alertname="{name}",alertstate="firing",target="revoked"}}')
        await stack.settled(instance)
        assert await stack.query(
            'ALERTS{alertname="AliyunVpnIpsecSaNotEstablished",alertstate="firing",'
            'vpn_gateway_id="vpn-cred1"}'
        )
        assert stack.webhook.find("resolved", vpn_gateway_id="vpn-cred1") == []
        assert _names(stack.sent(before, target="revoked")) == ["AliyunVpnCredentialsFailing"]


async def test_throttling_below_the_budget_loses_no_series_and_for_alerts_fire(
    stack: Stack,
) -> None:
    """(b) The API allows far fewer calls than the exporter's budget: polls are throttled,
    the pace stretches, yet no item series vanishes and an alert with a `for:` fires."""
    port = stack.ports["throttling"]
    unreachable = {
        "name": "VcoUserInternetIpConnectivity",
        "level": "error",
        "rtt_ms": -1,
        "loss_rate": 100,
    }
    gateways = [_gateway("thr1", items=[unreachable])] + [_gateway(f"thr{n}") for n in range(2, 7)]
    target = {"name": "throttled", "gateways": [g["id"] for g in gateways]}
    async with (
        simulating(*gateways, rate_limits={"GetVpnGatewayDiagnoseResult": 30}) as simulator,
        exporting(_config(simulator.url, target), port),
    ):
        instance = f"127.0.0.1:{port}"
        items = f'aliyun_vpn_diagnose_item_status{{instance="{instance}"}}'
        # Every gateway's items exported (6 gateways x 7 items x 3 levels), throttling seen.
        await stack.until(f"count({items}) == 126")
        # The API refuses calls (the exporter then waits out its x-acs-retry-after), and
        # the pace achieved is slower than the 2 s configured.
        await stack.until(
            f'aliyun_vpn_api_request_failures_total{{instance="{instance}",'
            'code=~"Throttling.*"} > 0'
        )
        await stack.until(
            f'aliyun_vpn_poll_effective_interval_seconds{{instance="{instance}"}} > 2'
        )
        alert = await stack.delivered(
            "firing", alertname="AliyunVpnProbeUnreachable", vpn_gateway_id="vpn-thr1"
        )
        assert alert["receiver"] == "critical"
        # Not one scrape since all were there lacked a series.
        (fewest,) = await stack.query(f"min_over_time(count({items})[15s:1s])")
        assert fewest["value"][1] == "126"


def _start_cli(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The exporter as a process of its own, listening once this returns."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_BOUND
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


async def test_a_killed_exporter_keeps_its_alerts_and_restarts_from_its_state(
    stack: Stack, tmp_path: Path
) -> None:
    """(d) Killed: its critical alert keeps firing (keep_firing_for), muted; only
    AliyunVpnExporterDown notifies. Restarted with the API unreachable, it serves its saved
    state before any poll, and nothing ever resolved."""
    port, neighbour_port = stack.ports["killed"], stack.ports["neighbour"]
    instance = f"127.0.0.1:{port}"
    gateways = [
        _gateway("kill1", connection={"status": "ike_sa_not_established"}),
        _gateway("next1"),
    ]
    async with simulating(*gateways) as simulator:
        config = _config(
            simulator.url,
            {"name": "killed", "gateways": ["vpn-kill1"]},
            state={"path": str(tmp_path / "state.json"), "interval": "1s"},
        )
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
        neighbour = _config(simulator.url, {"name": "neighbour", "gateways": ["vpn-next1"]})
        log = tmp_path / "exporter.log"
        # Another exporter of the job stays up, as a second shard would.
        async with exporting(neighbour, neighbour_port):
            process = _start_cli(config_file, port, log)
            try:
                await stack.delivered(
                    "firing", alertname="AliyunVpnIpsecSaNotEstablished", instance=instance
                )
                await stack.settled(instance)
                assert (tmp_path / "state.json").exists()
                before = len(stack.webhook.notifications)
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                down = await stack.delivered(
                    "firing", before, alertname="AliyunVpnExporterDown", instance=instance
                )
                assert down["receiver"] == "warning"
                assert await stack.query(
                    'ALERTS{alertname="AliyunVpnIpsecSaNotEstablished",alertstate="firing",'
                    f'instance="{instance}"}}'
                )
                await asyncio.sleep(2 * SETTLE)
                # Of everything about this exporter, only its being down was sent.
                # (one notification lists every exporter of the job that is down)
                about_it = stack.sent(before, instance=instance)
                assert set(_names(about_it)) == {"AliyunVpnExporterDown"}
                assert stack.sent(before, target="killed") == []
                # Restarted while every API call hangs: what it serves is its saved state.
                simulator.simulator.faults.add(Fault(kind=FaultKind.TIMEOUT))
                restarted = len(stack.webhook.notifications)
                process = _start_cli(config_file, port, log)
                async with httpx.AsyncClient() as client:
                    metrics = (await client.get(f"http://{instance}/metrics")).text
                assert "aliyun_vpn_state_restored_timestamp_seconds " in metrics
                assert (
                    'aliyun_vpn_connection_ipsec_status{target="killed",region_id="cn-hangzhou",'
                    'vpn_gateway_id="vpn-kill1",vpn_connection_id="vco-kill1",'
                    'status="ike_sa_not_established"} 1'
                ) in metrics
                await stack.until(f'up{{instance="{instance}"}} == 1')
                await stack.delivered(
                    "resolved", restarted, alertname="AliyunVpnExporterDown", instance=instance
                )
                # From the saved state the alert fires (again, if the outage outlasted
                # keep_firing_for) and Alertmanager, which never saw it resolve, sends nothing.
                await stack.until(
                    'ALERTS{alertname="AliyunVpnIpsecSaNotEstablished",alertstate="firing",'
                    f'instance="{instance}"}}'
                )
                await stack.settled(instance)
                assert stack.sent(before, vpn_gateway_id="vpn-kill1") == []
            finally:
                simulator.simulator.release_hangs()
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=15)
