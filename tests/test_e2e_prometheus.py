"""The monitoring pack end to end: Debian's Prometheus scrapes the demo exporter, loads the
shipped rules (with `for:` shortened), and sends to a real Alertmanager, which delivers to a
webhook in this test. Every Grafana panel query is run against the same Prometheus.

Prometheus and Alertmanager start once for the module; the exporter runs in-process.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from exporter.app import Exporter
from tests.dashboard_queries import (
    FIRST_VALUES,
    annotation_queries,
    families,
    on_a_dashboard,
    panel_queries,
    problems,
    variable_queries,
)
from tests.demo_harness import free_port, running_demo_exporter
from tests.required_tools import ALERTMANAGER, REPO, tool

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROMETHEUS = ("prometheus", "apt-get install -y --no-install-recommends prometheus")
RULES = REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml"
WAIT = 30.0
"""A generous bound for anything to show up: proves it comes, not how fast."""


@dataclass
class Webhook:
    """Collects what Alertmanager delivers."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, status: str, **labels: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                alert
                for alert in self.alerts
                if alert["status"] == status
                and all(alert["labels"].get(k) == v for k, v in labels.items())
            ]


def serve_webhook(webhook: Webhook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with webhook.lock:
                webhook.alerts.extend(json.loads(body)["alerts"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fast_rules(directory: Path) -> Path:
    """The shipped rules with every `for:` shortened to 0s (a test-only override)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url} exited with {process.returncode}"
        try:
            if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready within {WAIT}s")


@dataclass
class Stack:
    prometheus: str
    webhook: Webhook
    exporter: Exporter

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(self.prometheus + "/api/v1/query", params={"query": expr})
        body = answer.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def until(self, expr: str) -> list[dict[str, Any]]:
        """The result of `expr` once it is non-empty."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            result = await self.query(expr)
            if result:
                return result
            await asyncio.sleep(0.2)
        raise AssertionError(f"{expr} stayed empty for {WAIT}s")


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Webhook]]:
    """Alertmanager and Prometheus (scraping a port the exporter will take), once."""
    prometheus_bin = tool(*PROMETHEUS)
    alertmanager_bin = tool(*ALERTMANAGER)
    work = tmp_path_factory.mktemp("monitoring")
    webhook = Webhook()
    hook_server = serve_webhook(webhook)
    exporter_port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    (work / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "test",
                    "group_by": ["alertname", "vpn_gateway_id", "item"],
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "test",
                        "webhook_configs": [
                            {
                                "url": f"http://127.0.0.1:{hook_server.server_port}/",
                                "send_resolved": True,
                            }
                        ],
                    }
                ],
            }
        )
    )
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(fast_rules(work))],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "aliyun-vpn-exporter",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    processes = [
        subprocess.Popen(
            [
                alertmanager_bin,
                f"--config.file={work / 'alertmanager.yml'}",
                f"--storage.path={work / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{alertmanager_port}", processes[0])
        wait_ready(f"http://127.0.0.1:{prometheus_port}", processes[1])
        yield f"http://127.0.0.1:{prometheus_port}", exporter_port, webhook
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        hook_server.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(monitoring: tuple[str, int, Webhook]) -> AsyncIterator[Stack]:
    prometheus, exporter_port, webhook = monitoring
    async with running_demo_exporter(f"127.0.0.1:{exporter_port}") as exporter:
        yield Stack(prometheus, webhook, exporter)


async def test_every_dashboard_query_returns_data_about_the_demo(stack: Stack) -> None:
    # Wait for the demo's throttled retries and a few scrapes, so rates have two samples.
    await stack.until(
        'count_over_time(aliyun_vpn_api_request_failures_total{code="Throttling.User"}[1m]) > 1'
    )
    await stack.until(
        'count_over_time(aliyun_vpn_poll_success{vpn_gateway_id="vpn-hz1healthy"}[1m]) > 3'
    )
    failures = []
    demo_gateways_seen: set[str] = set()
    for query in [*panel_queries(), *variable_queries()]:
        result = await stack.query(query.expr)
        failures += problems(query, result)
        demo_gateways_seen |= {s["metric"].get("vpn_gateway_id", "") for s in result}
    assert not failures, "\n".join(failures)
    assert {"vpn-hz1healthy", "vpn-hz2quota", "vpn-sg2lossy"} <= demo_gateways_seen


async def test_gateway_detail_opens_on_the_first_gateway(stack: Stack) -> None:
    (variable,) = [q for q in variable_queries() if q.dashboard == "aliyun-vpn-gateway"
                   and q.panel == "$vpn_gateway_id"]  # fmt: skip
    result = await stack.until(variable.expr)
    first = min(series["metric"]["vpn_gateway_id"] for series in result)
    assert first == FIRST_VALUES["vpn_gateway_id"]


async def test_alert_annotations_show_a_firing_alert(stack: Stack) -> None:
    await stack.until('ALERTS{alertstate="firing", vpn_gateway_id="vpn-hz2quota"}')
    failures = []
    for query in annotation_queries(values={"vpn_gateway_id": "vpn-hz2quota"}):
        failures += problems(query, await stack.query(query.expr))
    assert not failures, "\n".join(failures)


async def test_api_failures_by_code_leave_out_no_diagnosis_yet(stack: Stack) -> None:
    not_found = 'aliyun_vpn_api_request_failures_total{code="InvalidVpnGatewayId.NotFound"}'
    await stack.until(not_found)
    panels = {q.panel: q for q in panel_queries() if q.dashboard == "aliyun-vpn-exporter"}
    by_code = await stack.until(panels["API failures by code"].expr)
    codes = {s["metric"]["code"] for s in by_code}
    assert "Throttling.User" in codes and "InvalidVpnGatewayId.NotFound" not in codes
    answers = await stack.until(panels["No diagnosis yet"].expr)
    assert {s["metric"]["code"] for s in answers} == {"InvalidVpnGatewayId.NotFound"}


async def test_every_exported_family_is_on_a_dashboard_or_the_readme_says_why(
    stack: Stack,
) -> None:
    await stack.until('up{job="aliyun-vpn-exporter"} == 1')
    result = await stack.query('group by (__name__) ({job="aliyun-vpn-exporter"})')
    exported = {series["metric"]["__name__"] for series in result}
    # Prometheus' own series about the scrape, alerts and recording rules are not exported.
    exported -= {"up", "ALERTS", "ALERTS_FOR_STATE"}
    exported = {n for n in exported if not n.startswith("scrape_") and ":" not in n}
    assert "aliyun_vpn_poll_success" in exported
    missing = sorted(family for family in families(exported) if not on_a_dashboard(family))
    assert not missing, f"on no dashboard and not in the README's list: {missing}"


async def test_error_level_gateway_pages_with_labels_and_annotations(stack: Stack) -> None:
    deadline = time.monotonic() + WAIT
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not alerts:
        alerts = stack.webhook.find(
            "firing", alertname="AliyunVpnQuotaUtilisationCritical", vpn_gateway_id="vpn-hz2quota"
        )
        await asyncio.sleep(0.2)
    assert alerts, "AliyunVpnQuotaUtilisationCritical for vpn-hz2quota never arrived"
    alert = alerts[0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["region_id"] == "cn-hangzhou"
    assert alert["labels"]["item"] == "VpnIPsecQuota"
    assert alert["labels"]["job"] == "aliyun-vpn-exporter"
    assert "vpn-hz2quota" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith("#alert-aliyunvpnquotautilisationcritical")
    assert stack.webhook.find(
        "firing", alertname="AliyunVpnDiagnoseItemError", vpn_gateway_id="vpn-hz2quota"
    ) or (
        await stack.until(
            'ALERTS{alertname="AliyunVpnDiagnoseItemError",vpn_gateway_id="vpn-hz2quota"}'
        )
    )


async def test_healthy_gateway_raises_no_alert(stack: Stack) -> None:
    await stack.until('ALERTS{alertstate="firing",vpn_gateway_id="vpn-hz3unreachable"}')
    firing = await stack.query('ALERTS{vpn_gateway_id="vpn-hz1healthy"}')
    assert firing == []
    assert stack.webhook.find("firing", vpn_gateway_id="vpn-hz1healthy") == []


async def test_stopping_the_exporter_resolves_its_alerts(stack: Stack) -> None:
    await stack.until('ALERTS{alertstate="firing",alertname="AliyunVpnQuotaUtilisationCritical"}')
    await stack.exporter.stop()
    deadline = time.monotonic() + WAIT
    resolved: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not resolved:
        resolved = stack.webhook.find(
            "resolved", alertname="AliyunVpnQuotaUtilisationCritical", vpn_gateway_id="vpn-hz2quota"
        )
        await asyncio.sleep(0.2)
    assert resolved, "the alert was not resolved after the exporter stopped"
    down = await stack.until('ALERTS{alertname="AliyunVpnExporterDown",alertstate="firing"}')
    assert re.match(r"127\.0\.0\.1:\d+", down[0]["metric"]["instance"])
