"""The monitoring pack end to end: Debian's Prometheus scrapes the demo exporter, loads the
shipped rules (durations shortened sixty-fold) and sends to a real Alertmanager running the
shipped configuration, which delivers to a webhook in this test. Every Grafana panel query
is run against the same Prometheus, and the README's demo table is checked against what
the rules make of the demo fleet.

Prometheus and Alertmanager start once for the module; the exporter runs in-process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from exporter.app import Exporter
from tests.alertmanager_harness import Webhook, running_alertmanager, serving, shipped_config
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
from tests.prometheus_harness import PromQL, running_prometheus, scaled_rules
from tests.required_tools import REPO

pytestmark = pytest.mark.asyncio(loop_scope="module")
WAIT = 30.0
"""A generous bound for anything to show up: proves it comes, not how fast."""
SLOWEST_ALERT = 90.0
"""The demo table's slowest alert waits `for: 1h`, a minute here: a bound, not a speed."""


@dataclass
class Stack(PromQL):
    webhook: Webhook
    exporter: Exporter

    async def delivered(self, status: str, **labels: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if found := self.webhook.find(status, **labels):
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"no {status} notification with {labels} within {WAIT}s")


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Webhook]]:
    """Alertmanager and Prometheus (scraping a port the exporter will take), once."""
    work = tmp_path_factory.mktemp("monitoring")
    webhook = Webhook()
    exporter_port = free_port()
    with (
        serving(webhook) as hook,
        running_alertmanager(shipped_config(hook), work / "am") as alertmanager,
        running_prometheus(scaled_rules(work), [exporter_port], alertmanager, work) as prometheus,
    ):
        yield prometheus, exporter_port, webhook


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


async def test_quota_alert_names_the_gateway_its_value_and_its_dashboard(stack: Stack) -> None:
    (alert, *_) = await stack.delivered(
        "firing", alertname="AliyunVpnQuotaUtilisationCritical", vpn_gateway_id="vpn-hz2quota"
    )
    assert alert["receiver"] == "warning"
    labels, annotations = alert["labels"], alert["annotations"]
    assert labels["severity"] == "warning"
    assert labels["gateway_name"] == "hz2-quota"
    assert labels["region_id"] == "cn-hangzhou" and labels["item"] == "VpnIPsecQuota"
    assert labels["job"] == "aliyun-vpn-exporter"
    assert re.fullmatch(
        r'Quota \S+ of VPN gateway vpn-hz2quota "hz2-quota" is 9\d(\.\d+)?% used\.',
        annotations["summary"],
    ), annotations["summary"]
    assert annotations["dashboard_url"].endswith(
        "/d/aliyun-vpn-gateway?var-region_id=cn-hangzhou&var-vpn_gateway_id=vpn-hz2quota"
    )
    assert annotations["runbook_url"].endswith("#alert-aliyunvpnquotautilisationcritical")
    # The quota item's own level is the quota alert's business: no second, generic page.
    assert await stack.query('ALERTS{alertname=~"AliyunVpnDiagnoseItem.*"}') == []
    # 80 % is inhibited behind 95 % of the same quota: it fires, but is not delivered.
    await stack.until(
        'ALERTS{alertname="AliyunVpnQuotaUtilisationHigh",alertstate="firing",item="VpnIPsecQuota"}'
    )
    assert (
        stack.webhook.find(
            "firing", alertname="AliyunVpnQuotaUtilisationHigh", item="VpnIPsecQuota"
        )
        == []
    )


def _demo_table() -> dict[str, set[str]]:
    """The README's demo fleet table: gateway -> the alerts it lists as firing."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| [\w-]+ \| `(vpn-\w+)` \| [^|]+ \| ([^|]+) \|$", readme, flags=re.M)
    assert len(rows) >= 6, "the README's demo table has no alerts column"
    return {
        gateway: set() if alerts.strip() == "none" else set(re.findall(r"AliyunVpn\w+", alerts))
        for gateway, alerts in rows
    }


async def _firing_by_gateway(stack: Stack) -> dict[str, set[str]]:
    firing: dict[str, set[str]] = {}
    for sample in await stack.query('ALERTS{alertstate="firing",vpn_gateway_id!=""}'):
        metric = sample["metric"]
        firing.setdefault(metric["vpn_gateway_id"], set()).add(metric["alertname"])
    return firing


async def _settled(stack: Stack) -> dict[str, set[str]]:
    """What fires about the demo gateways once nothing is pending any more (or the bound
    ran out): every condition the rules see in the demo has had its `for:`."""
    # Every demo gateway scraped a few times, so every rule has seen every gateway.
    await stack.until("count(count_over_time(aliyun_vpn_gateway_info[1m]) >= 3) >= 6")
    deadline = time.monotonic() + SLOWEST_ALERT
    while time.monotonic() < deadline:
        if not await stack.query('ALERTS{alertstate="pending",vpn_gateway_id!=""}'):
            break
        await asyncio.sleep(0.5)
    return await _firing_by_gateway(stack)


async def test_the_readme_demo_table_lists_exactly_the_alerts_that_fire(stack: Stack) -> None:
    expected = {gateway: alerts for gateway, alerts in _demo_table().items() if alerts}
    assert await _settled(stack) == expected
    # Still exactly these a few evaluations later: nothing was on its way.
    await asyncio.sleep(3)
    assert await _firing_by_gateway(stack) == expected


async def test_healthy_gateway_raises_no_alert(stack: Stack) -> None:
    await stack.until('ALERTS{alertstate="firing",vpn_gateway_id="vpn-hz3unreachable"}')
    assert await stack.query('ALERTS{vpn_gateway_id="vpn-hz1healthy"}') == []
    assert stack.webhook.find("firing", vpn_gateway_id="vpn-hz1healthy") == []


async def test_stopping_the_exporter_resolves_none_of_its_alerts(stack: Stack) -> None:
    await stack.delivered(
        "firing", alertname="AliyunVpnQuotaUtilisationCritical", vpn_gateway_id="vpn-hz2quota"
    )
    # Every demo alert has fired and been delivered (group_wait and group_interval are 1s).
    await _settled(stack)
    await asyncio.sleep(2.5)
    sent_before = len(stack.webhook.notifications)
    await stack.exporter.stop()
    # With no exporter up at all, AliyunVpnExporterAbsent is what pages.
    await stack.delivered("firing", alertname="AliyunVpnExporterAbsent")
    down = await stack.until('ALERTS{alertname="AliyunVpnExporterDown",alertstate="firing"}')
    assert re.match(r"127\.0\.0\.1:\d+", down[0]["metric"]["instance"])
    # The gateway alerts keep firing on what the exporter last said (keep_firing_for), muted.
    assert await stack.query(
        'ALERTS{alertname="AliyunVpnQuotaUtilisationCritical",alertstate="firing"}'
    )
    # Info alerts go to the "null" receiver: nowhere in production.
    new = [n for n in stack.webhook.notifications[sent_before:] if n["receiver"] != "null"]
    assert {a["labels"]["alertname"] for n in new for a in n["alerts"]} == {
        "AliyunVpnExporterAbsent"
    }
    assert stack.webhook.find("resolved", vpn_gateway_id="vpn-hz2quota") == []
