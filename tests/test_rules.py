"""The alerting and recording rules in deploy/prometheus/, checked and unit-tested by promtool.

promtool comes with Debian's `prometheus` package. Without it these tests skip locally and
fail under CI (tests/required_tools.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.metric_contract import SERIES, names_in
from tests.required_tools import PROMTOOL, REPO, tool

RULES = REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml"
GATEWAY_DASHBOARD = REPO / "grafana" / "dashboards" / "aliyun-vpn-gateway.json"
RULE_TESTS = sorted((REPO / "deploy" / "prometheus" / "tests").glob("*.yml"))
RUNBOOK = "https://github.com/aliyun-vpn-exporter/aliyun-vpn-exporter/blob/main/README.md"
SEVERITIES = {"critical", "warning", "info"}
# Alerts about the exporter's own absence: every other alert rides over a scrape gap.
ABSENCE_ALERTS = ("AliyunVpnExporterDown", "AliyunVpnExporterAbsent")
# Metrics read from the quick diagnosis: alerts on them fire only while it is recent.
DIAGNOSIS_METRICS = re.compile(
    r"aliyun_vpn_(diagnose_item_status|quota_|probe_|config_(consistent|diff|peer)|route_conflicts)"
    r"|aliyun_vpn:quota"
)


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return groups


def _rules(kind: str) -> list[dict[str, Any]]:
    return [rule for group in _groups() for rule in group["rules"] if kind in rule]


ALERTS = {rule["alert"]: rule for rule in _rules("alert")}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_rules_pass_promtool_check_with_lint_fatal() -> None:
    promtool = tool(*PROMTOOL)
    result = _run(promtool, "check", "rules", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = tool(*PROMTOOL)
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests/"
    # One process per file, side by side: the files are independent.
    running = [
        (
            path,
            subprocess.Popen(
                [promtool, "test", "rules", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for path in RULE_TESTS
    ]
    failures = []
    for path, process in running:
        output, _ = process.communicate(timeout=60)
        if process.returncode != 0:
            failures.append(f"{path.name}:\n{output}")
    assert not failures, "\n".join(failures)


def _alert_tests() -> tuple[set[str], set[str]]:
    """Alert names some unit test expects firing, and names some test expects silent."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    return firing, silent


def test_every_alert_has_unit_tests_showing_it_firing_and_not_firing() -> None:
    firing, silent = _alert_tests()
    assert set(ALERTS) - firing == set(), "alerts never shown firing"
    assert set(ALERTS) - silent == set(), "alerts never shown staying silent"
    assert (firing | silent) - set(ALERTS) == set(), "tests of alerts that do not exist"


def test_unit_tests_load_the_shipped_rules_file() -> None:
    for path in RULE_TESTS:
        rule_files = yaml.safe_load(path.read_text(encoding="utf-8"))["rule_files"]
        assert [(path.parent / f).resolve() for f in rule_files] == [RULES.resolve()], path.name


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_follows_mixin_conventions(name: str) -> None:
    rule = ALERTS[name]
    assert re.fullmatch(r"AliyunVpn(?:[A-Z][a-z0-9]+)+", name), (
        "CamelCase with the AliyunVpn prefix"
    )
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert set(annotations) <= {"summary", "description", "runbook_url", "dashboard_url"}
    assert annotations["runbook_url"] == f"{RUNBOOK}#alert-{name.lower()}"
    assert annotations["summary"].endswith(".")
    assert rule.get("for"), "every alert waits before firing"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_gateway_alerts_name_the_gateway_and_link_its_dashboard(name: str) -> None:
    rule = ALERTS[name]
    if "vpn_gateway_id" not in rule["annotations"]["description"]:
        return
    summary = rule["annotations"]["summary"]
    assert "{{ $labels.vpn_gateway_id }}" in summary and "$labels.gateway_name" in summary
    assert "group_left (gateway_name) aliyun_vpn_gateway:name:info" in rule["expr"]
    dashboard = rule["annotations"]["dashboard_url"]
    uid = json.loads(GATEWAY_DASHBOARD.read_text(encoding="utf-8"))["uid"]
    assert f"/d/{uid}?" in dashboard
    assert "var-vpn_gateway_id={{ $labels.vpn_gateway_id }}" in dashboard


def test_alerts_keep_firing_over_a_restart_but_the_exporter_absence_ones() -> None:
    """Longer than AliyunVpnExporterDown waits, so a scrape gap never resolves them."""
    down_for = _seconds(ALERTS["AliyunVpnExporterDown"]["for"])
    for name in set(ALERTS) - set(ABSENCE_ALERTS):
        assert _seconds(ALERTS[name]["keep_firing_for"]) > down_for, name
    for name in ABSENCE_ALERTS:
        assert "keep_firing_for" not in ALERTS[name], name


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, duration
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alerts_on_diagnosis_values_fire_only_while_the_diagnosis_is_recent(name: str) -> None:
    expr = ALERTS[name]["expr"]
    if DIAGNOSIS_METRICS.search(expr):
        assert "diagnose_recent:bool == 1" in expr


def test_stale_diagnosis_has_its_own_alert() -> None:
    assert (
        "aliyun_vpn_gateway:diagnose_recent:bool == 0" in ALERTS["AliyunVpnDiagnosisStale"]["expr"]
    )


def test_diagnosis_age_limit_comes_from_the_exporter_not_a_constant() -> None:
    recorded = {rule["record"]: rule["expr"] for rule in _rules("record")}
    recent = recorded["aliyun_vpn_connection:diagnose_recent:bool"]
    assert "aliyun_vpn_diagnose_max_age_seconds" in recent
    exprs = [rule["expr"] for rule in _rules("record") + _rules("alert")]
    assert not [e for e in exprs if re.search(r"\b(10800|86400|3600)\b", e)]


def test_throttling_alert_counts_throttling_codes_of_the_failure_counter() -> None:
    expr = ALERTS["AliyunVpnApiThrottling"]["expr"]
    assert 'aliyun_vpn_api_request_failures_total{code=~"Throttling.*"}' in expr


def test_absent_alert_watches_the_default_job() -> None:
    assert ALERTS["AliyunVpnExporterAbsent"]["expr"] == 'absent(up{job="aliyun-vpn-exporter"} == 1)'


def test_recording_rules_are_named_level_metric_operation() -> None:
    for rule in _rules("record"):
        assert re.fullmatch(r"aliyun_vpn(_[a-z]+)?:[a-z_]+:[a-z]+", rule["record"]), rule["record"]


def test_rules_use_only_metrics_of_the_contract() -> None:
    recorded = {rule["record"] for rule in _rules("record")}
    for rule in _rules("record") + _rules("alert"):
        assert names_in(rule["expr"]) <= SERIES, rule.get("alert") or rule.get("record")
        for name in re.findall(r"aliyun_vpn[a-z_]*:[a-z_:]+", rule["expr"]):
            assert name in recorded, name


def test_rule_groups_have_distinct_names() -> None:
    names = [group["name"] for group in _groups()]
    assert len(names) == len(set(names))


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings, and explicit `<a id=…>` anchors."""
    anchors = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", markdown, flags=re.M):
        text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
        anchors.add(text.replace(" ", "-"))
    return anchors


def test_readme_has_a_runbook_section_per_alert() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = sorted(
        rule["annotations"]["runbook_url"].split("#", 1)[1]
        for rule in ALERTS.values()
        if rule["annotations"]["runbook_url"].split("#", 1)[1] not in _github_anchors(readme)
    )
    assert not missing, f"README.md has no section for: {missing} (headings 'Alert: <name>')"


def _readme_alert_table() -> dict[str, list[str]]:
    """The README's alert table: alert name -> its cells (severity, for, threshold, why)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \[(AliyunVpn\w+)\]\(#alert-\w+\) \|(.*)\|$", readme, flags=re.M)
    return {name: [cell.strip() for cell in cells.split(" | ")] for name, cells in rows}


def test_readme_alert_table_lists_every_alert_with_its_severity_and_for() -> None:
    table = _readme_alert_table()
    assert set(table) == set(ALERTS)
    for name, (severity, duration, *_rest) in table.items():
        rule = ALERTS[name]
        assert severity == rule["labels"]["severity"], name
        assert duration.split(",")[0] == rule["for"], name
        assert ("kept" in duration) == ("keep_firing_for" in rule), name
