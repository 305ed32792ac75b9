"""The shipped Alertmanager configuration (deploy/alertmanager/alertmanager.yml): amtool's
view of its routes, and a real Alertmanager running it (receivers pointed at this test)
deciding what is muted, how alerts group into notifications and where they go.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.alertmanager_harness import (
    SHIPPED,
    WAIT,
    Webhook,
    running_alertmanager,
    serving,
    shipped_config,
)
from tests.required_tools import AMTOOL, tool

HZ, SG = "default/cn-hangzhou", "default/ap-southeast-1"


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    target = labels.pop("target", HZ)
    region = "ap-southeast-1" if target == SG else "cn-hangzhou"
    base = {"job": "aliyun-vpn-exporter", "instance": "exporter:9747", "target": target}
    if "vpn_gateway_id" in labels:
        base["region_id"] = region
    ends = datetime.now(UTC) + timedelta(hours=1)
    return {
        "labels": {"alertname": name, "severity": severity, **base, **labels},
        "annotations": {},
        "endsAt": ends.isoformat(),
    }


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical"], "critical"),
        (["severity=warning"], "warning"),
        (["severity=info"], "null"),
        ([], "warning"),
    ],
)
def test_amtool_routes_critical_and_warning_to_different_receivers(
    labels: list[str], receiver: str
) -> None:
    result = subprocess.run(
        [
            tool(*AMTOOL),
            "config",
            "routes",
            "test",
            f"--config.file={SHIPPED}",
            "alertname=AliyunVpnDataStale",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [receiver]


# The sources of inhibition are posted first, then the alerts they may mute.
SOURCES = {
    "ipsec-hz3": _alert(
        "AliyunVpnIpsecSaNotEstablished",
        "critical",
        vpn_gateway_id="vpn-hz3unreachable",
        vpn_connection_id="vco-hz3unreachable",
    ),
    "gateway-stale-hz2": _alert(
        "AliyunVpnGatewayDataStale", "warning", vpn_gateway_id="vpn-hz2quota"
    ),
    "credentials-sg": _alert("AliyunVpnCredentialsFailing", "critical", target=SG, profile="prod"),
    "not-found-hz9": _alert("AliyunVpnGatewayNotFound", "critical", vpn_gateway_id="vpn-hz9gone"),
    "quota-critical-hz5": _alert(
        "AliyunVpnQuotaUtilisationCritical",
        "warning",
        vpn_gateway_id="vpn-hz5quota",
        item="VpnIPsecQuota",
        quota_name="vpn_quota_ipsec_connections_num",
    ),
    "exporter-down-1": _alert("AliyunVpnExporterDown", "warning", instance="exporter-1:9747"),
}
TARGETS = {
    # muted: a cause above names them
    "tunnel-hz3": _alert(
        "AliyunVpnTunnelIpsecSaNotEstablished",
        "warning",
        vpn_gateway_id="vpn-hz3unreachable",
        vpn_connection_id="vco-hz3unreachable",
        tunnel_id="tun-hz3unreachable1",
    ),
    "probe-hz3": _alert(
        "AliyunVpnProbeUnreachable",
        "critical",
        vpn_gateway_id="vpn-hz3unreachable",
        vpn_connection_id="vco-hz3unreachable",
        item="VcoUserInternetIpConnectivity",
        target_ip="203.0.113.13",
    ),
    "health-hz3": _alert(
        "AliyunVpnHealthCheckFailed",
        "critical",
        vpn_gateway_id="vpn-hz3unreachable",
        vpn_connection_id="vco-hz3unreachable",
        status="failed",
    ),
    "item-hz2": _alert(
        "AliyunVpnDiagnoseItemError",
        "critical",
        vpn_gateway_id="vpn-hz2quota",
        vpn_connection_id="vco-hz2quota",
        item="VcoNewCheck",
        level="error",
    ),
    "quota-high-hz2": _alert(
        "AliyunVpnQuotaUtilisationHigh",
        "warning",
        vpn_gateway_id="vpn-hz2quota",
        item="VpnIPsecQuota",
        quota_name="vpn_quota_ipsec_connections_num",
    ),
    "quota-high-hz5": _alert(
        "AliyunVpnQuotaUtilisationHigh",
        "warning",
        vpn_gateway_id="vpn-hz5quota",
        item="VpnIPsecQuota",
        quota_name="vpn_quota_ipsec_connections_num",
    ),
    "stale-sg": _alert("AliyunVpnDataStale", "critical", target=SG),
    "gateway-stale-hz9": _alert(
        "AliyunVpnGatewayDataStale", "warning", vpn_gateway_id="vpn-hz9gone"
    ),
    "ipsec-sg1": _alert(
        "AliyunVpnIpsecSaNotEstablished",
        "critical",
        target=SG,
        vpn_gateway_id="vpn-sg1inconsistent",
        vpn_connection_id="vco-sg1inconsistent",
    ),
    "poll-sg2": _alert("AliyunVpnPollFailing", "warning", target=SG, vpn_gateway_id="vpn-sg2lossy"),
    "config-other-shard": _alert(
        "AliyunVpnConfigInconsistent",
        "warning",
        instance="exporter-1:9747",
        vpn_gateway_id="vpn-hz9",
        vpn_connection_id="vco-hz9",
        item="VcoConfigConsistency",
    ),
    # not muted: nothing names their cause
    "config-hz3": _alert(
        "AliyunVpnConfigInconsistent",
        "warning",
        vpn_gateway_id="vpn-hz3unreachable",
        vpn_connection_id="vco-hz3unreachable",
        item="VcoConfigConsistency",
    ),
    "tunnel-hz1": _alert(
        "AliyunVpnTunnelIpsecSaNotEstablished",
        "warning",
        vpn_gateway_id="vpn-hz1healthy",
        vpn_connection_id="vco-hz1healthy",
        tunnel_id="tun-hz1healthy2",
    ),
    "item-hz1": _alert(
        "AliyunVpnDiagnoseItemError",
        "critical",
        vpn_gateway_id="vpn-hz1healthy",
        vpn_connection_id="vco-hz1healthy",
        item="VcoNewCheck",
        level="error",
    ),
    "quota-high-hz1": _alert(
        "AliyunVpnQuotaUtilisationHigh",
        "warning",
        vpn_gateway_id="vpn-hz1healthy",
        item="VpnRouteQuota",
        quota_name="vpn_quota_route_entries_num",
    ),
    "config-reload": _alert("AliyunVpnConfigReloadFailed", "warning", target=""),
}
MUTED = {
    "tunnel-hz3",
    "probe-hz3",
    "health-hz3",
    "item-hz2",
    "quota-high-hz2",
    "quota-high-hz5",
    "stale-sg",
    "gateway-stale-hz9",
    "ipsec-sg1",
    "poll-sg2",
    "config-other-shard",
}
# Three gateways of one target failing the same way: one notification.
GROUPED = {
    f"poll-{gateway}": _alert("AliyunVpnPollFailing", "warning", vpn_gateway_id=gateway)
    for gateway in ("vpn-hz1healthy", "vpn-hz4nodiag", "vpn-hz6")
}


@pytest.fixture(scope="module")
def delivered(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Webhook, dict[str, bool]]]:
    """Every alert above posted to a real Alertmanager; what it delivered and muted."""
    webhook = Webhook()
    with (
        serving(webhook) as hook,
        running_alertmanager(shipped_config(hook), tmp_path_factory.mktemp("alertmanager")) as url,
    ):
        _post(url, SOURCES)
        _until(url, lambda alerts: len(alerts) == len(SOURCES))
        _post(url, {**TARGETS, **GROUPED})
        everything = {**SOURCES, **TARGETS, **GROUPED}
        alerts = _until(url, lambda alerts: len(alerts) == len(everything))
        by_labels = {_key(a["labels"]): name for name, a in everything.items()}
        muted = {by_labels[_key(a["labels"])]: bool(a["status"]["inhibitedBy"]) for a in alerts}
        # Every unmuted group is sent within a group_wait; two more group_intervals show
        # nothing else follows.
        deadline = time.monotonic() + WAIT
        while not webhook.alerts(alertname="AliyunVpnConfigReloadFailed"):
            assert time.monotonic() < deadline, "nothing delivered"
            time.sleep(0.1)
        time.sleep(2.5)
        yield webhook, muted


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if v))


def _post(url: str, alerts: dict[str, dict[str, Any]]) -> None:
    answer = httpx.post(f"{url}/api/v2/alerts", json=list(alerts.values()), timeout=5)
    assert answer.status_code == 200, answer.text


def _until(url: str, done: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while True:
        alerts: list[dict[str, Any]] = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        if done(alerts):
            return alerts
        assert time.monotonic() < deadline, alerts
        time.sleep(0.05)


def test_an_alert_whose_cause_fires_is_muted_and_others_are_not(
    delivered: tuple[Webhook, dict[str, bool]],
) -> None:
    _, muted = delivered
    assert {name for name in TARGETS if muted[name]} == MUTED
    assert not any(muted[name] for name in SOURCES)


def test_muted_alerts_are_not_delivered(delivered: tuple[Webhook, dict[str, bool]]) -> None:
    webhook, _ = delivered
    sent = {_key(a["labels"]) for a in webhook.alerts()}
    for name in MUTED:
        assert _key(TARGETS[name]["labels"]) not in sent, name
    for name in set(TARGETS) - MUTED:
        assert _key(TARGETS[name]["labels"]) in sent, name


def test_one_targets_gateways_failing_alike_arrive_as_one_notification(
    delivered: tuple[Webhook, dict[str, bool]],
) -> None:
    webhook, _ = delivered
    (notification,) = webhook.with_alert(alertname="AliyunVpnPollFailing", target=HZ)
    gateways = {a["labels"]["vpn_gateway_id"] for a in notification["alerts"]}
    assert gateways == {"vpn-hz1healthy", "vpn-hz4nodiag", "vpn-hz6"}
    assert notification["groupLabels"] == {"alertname": "AliyunVpnPollFailing", "target": HZ}


def test_critical_and_warning_go_to_different_receivers(
    delivered: tuple[Webhook, dict[str, bool]],
) -> None:
    webhook, _ = delivered
    received = {(a["labels"]["severity"], a["receiver"]) for a in webhook.alerts()}
    assert received == {("critical", "critical"), ("warning", "warning")}
