"""The Grafana dashboards and their provisioning, checked without Grafana.

- the committed JSON is exactly what grafana/generate.py builds;
- it passes a JSON Schema of Grafana 11.6's Dashboard type (tests/fixtures/, made from
  npm @grafana/schema; see tests/fixtures/grafana-dashboard.schema.md);
- every query, variables substituted as Grafana would, parses as PromQL (promtool), selects
  only metrics of the contract, and names in its legend the labels its result must carry
  (tests/dashboard_queries.py: the end-to-end test runs these queries against a real
  Prometheus scraping the demo).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.dashboard_queries import (
    ALL,
    DASHBOARD_DIR,
    FIRST_VALUES,
    PanelQuery,
    annotation_queries,
    dashboard_files,
    iter_panels,
    legend_labels,
    load,
    on_a_dashboard,
    panel_queries,
    problems,
    substitute,
    variable_queries,
)
from tests.metric_contract import COUNTERS, GAUGES, HISTOGRAMS, PER_GATEWAY, SERIES, names_in
from tests.required_tools import PROMTOOL, REPO, module, tool

GENERATOR = REPO / "grafana" / "generate.py"
SCHEMA = REPO / "tests" / "fixtures" / "grafana-dashboard.schema.json"
PROVISIONING = REPO / "grafana" / "provisioning"
COMPOSE = REPO / "deploy" / "docker-compose.yml"
RULES = REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml"
SDK_INSTALL = "pip install 'grafana-foundation-sdk==1769699379!11.6.0'"
DASHBOARDS = {path.name: load(path) for path in dashboard_files()}
VARIABLES = ["datasource", "job", "region_id", "vpn_gateway_id"]


def _generator() -> ModuleType:
    module("grafana_foundation_sdk", SDK_INSTALL)
    spec = importlib.util.spec_from_file_location("grafana_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    return generate


def _validator() -> Any:
    jsonschema = module("jsonschema", "pip install jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def test_the_three_dashboards_are_there() -> None:
    assert set(DASHBOARDS) == {
        "aliyun-vpn-fleet.json",
        "aliyun-vpn-gateway.json",
        "aliyun-vpn-exporter.json",
    }


def test_committed_dashboards_are_the_generators_output() -> None:
    built = _generator().build_all()
    assert set(built) == set(DASHBOARDS)
    for name, text in built.items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} differs from grafana/generate.py's output: run python grafana/generate.py"
        )


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_the_grafana_schema(name: str) -> None:
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _validator().iter_errors(DASHBOARDS[name])
    ]
    assert not errors


def test_the_schema_check_catches_a_misspelt_key_and_a_wrong_type() -> None:
    validator = _validator()
    board = copy.deepcopy(DASHBOARDS["aliyun-vpn-fleet.json"])
    board["panels"][1]["gridpos"] = board["panels"][1].pop("gridPos")
    assert not validator.is_valid(board)
    board = copy.deepcopy(DASHBOARDS["aliyun-vpn-fleet.json"])
    board["templating"]["list"][1]["multi"] = "yes"
    assert not validator.is_valid(board)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_the_datasource_job_region_and_gateway_variables(name: str) -> None:
    variables = DASHBOARDS[name]["templating"]["list"]
    assert [v["name"] for v in variables] == VARIABLES
    assert variables[0]["type"] == "datasource" and variables[0]["query"] == "prometheus"
    for variable in variables[1:]:
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        if name == "aliyun-vpn-gateway.json" and variable["name"] == "vpn_gateway_id":
            continue
        assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"


def test_gateway_detail_shows_one_gateway_not_all() -> None:
    (gateway,) = [
        v
        for v in DASHBOARDS["aliyun-vpn-gateway.json"]["templating"]["list"]
        if v["name"] == "vpn_gateway_id"
    ]
    assert not gateway["multi"] and not gateway["includeAll"] and "allValue" not in gateway
    assert not gateway.get("current"), "Grafana must pick the first gateway, not a fixed one"


def _links(panel: dict[str, Any]) -> list[dict[str, str]]:
    config = panel.get("fieldConfig", {})
    links = list(config.get("defaults", {}).get("links", []))
    for override in config.get("overrides", []):
        for prop in override["properties"]:
            if prop["id"] == "links" and override["matcher"] == {"id": "byRegexp", "options": ".*"}:
                links += prop["value"]
    return links


def test_every_fleet_table_row_opens_its_gateway_in_the_detail_dashboard() -> None:
    detail = DASHBOARDS["aliyun-vpn-gateway.json"]
    detail_variables = {v["name"] for v in detail["templating"]["list"]}
    tables = [p for p in iter_panels(DASHBOARDS["aliyun-vpn-fleet.json"]) if p["type"] == "table"]
    assert len(tables) >= 4
    for panel in tables:
        (link,) = _links(panel)
        path, _, query = link["url"].partition("?")
        assert path.split("/")[2] == detail["uid"], panel["title"]
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        assert params["var-vpn_gateway_id"] == "${__data.fields.vpn_gateway_id}"
        assert {name[4:] for name in params if name.startswith("var-")} <= detail_variables
        for target in panel["targets"]:  # so every row has the field the link reads
            assert "vpn_gateway_id" in legend_labels(target["legendFormat"]), panel["title"]
        # ... under that name: the link finds the field by its display name.
        for transformation in panel.get("transformations", []):
            renamed = transformation["options"].get("renameByName", {})
            assert renamed.get("vpn_gateway_id", "vpn_gateway_id") == "vpn_gateway_id"
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            if override["matcher"].get("options") == "vpn_gateway_id":
                assert all(p["id"] != "displayName" for p in override["properties"])


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_time_series_carry_the_firing_alerts(name: str) -> None:
    (annotation,) = DASHBOARDS[name]["annotations"]["list"]
    assert annotation["enable"] and annotation["datasource"]["uid"] == "${datasource}"
    assert annotation["expr"].startswith('ALERTS{alertstate="firing", job=~"$job"')
    assert annotation["titleFormat"] == "{{alertname}}"


def test_a_gateway_without_a_diagnosis_is_explained_where_its_data_would_be() -> None:
    detail = list(iter_panels(DASHBOARDS["aliyun-vpn-gateway.json"]))
    (panel,) = [p for p in detail if "aliyun_vpn_diagnose_available" in str(p.get("targets"))]
    assert "InvalidVpnGatewayId.NotFound" in panel["description"]
    assert "diagnose.enabled" in panel["description"]
    texts = {m["text"] for mapping in panel["fieldConfig"]["defaults"]["mappings"]
             for m in mapping["options"].values()}  # fmt: skip
    assert any("InvalidVpnGatewayId.NotFound" in text for text in texts)


def test_every_metric_of_the_contract_is_on_a_dashboard_or_the_readme_says_why() -> None:
    missing = sorted(name for name in GAUGES | COUNTERS | HISTOGRAMS if not on_a_dashboard(name))
    assert not missing, f"on no dashboard and not in the README's list: {missing}"


def test_api_failures_by_code_leave_out_the_no_diagnosis_yet_answer() -> None:
    health = list(iter_panels(DASHBOARDS["aliyun-vpn-exporter.json"]))
    for title in ("API failures by code", "API failures in the time range"):
        (panel,) = [p for p in health if p["title"] == title]
        assert 'code!="InvalidVpnGatewayId.NotFound"' in panel["targets"][0]["expr"]
    (answers,) = [p for p in health if p["title"] == "No diagnosis yet"]
    assert 'code="InvalidVpnGatewayId.NotFound"' in answers["targets"][0]["expr"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_queries_the_chosen_datasource(name: str) -> None:
    for panel in iter_panels(DASHBOARDS[name]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]


def test_dashboards_have_unique_uids_and_panel_ids() -> None:
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    for board in DASHBOARDS.values():
        ids = [panel["id"] for panel in iter_panels(board)]
        assert len(set(ids)) == len(ids), board["uid"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    for board in DASHBOARDS.values():
        cells: set[tuple[int, int]] = set()
        for panel in iter_panels(board):
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, panel["title"]
            mine = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & mine, f"{board['uid']}: {panel['title']} overlaps"
            cells |= mine


QUERIES = panel_queries()


def _id(query: PanelQuery) -> str:
    return f"{query.dashboard}/{query.panel}/{query.ref_id}"


@pytest.mark.parametrize("query", QUERIES, ids=_id)
def test_query_names_in_its_legend_the_labels_it_is_about(query: PanelQuery) -> None:
    names = names_in(query.expr)
    assert query.required_labels, "the legend must name the labels the result carries"
    if names & PER_GATEWAY and "by (action" not in query.expr:
        # A fleet-wide count names the state it counts by instead.
        counted = query.required_labels in (("level",), ("status",))
        assert "vpn_gateway_id" in query.required_labels or counted
    if names & {"aliyun_vpn_api_requests_total", "aliyun_vpn_api_request_failures_total"}:
        assert "action" in query.required_labels
    grouping = re.search(r"\bby \(([^)]*)\)", query.expr)
    if grouping:  # the legend can only show labels the (outermost) aggregation keeps
        kept = {label.strip() for label in grouping.group(1).split(",")}
        assert set(query.required_labels) <= kept


@pytest.mark.parametrize("query", QUERIES, ids=_id)
def test_query_selects_only_metrics_of_the_contract(query: PanelQuery) -> None:
    names = names_in(query.expr)
    assert names <= SERIES
    assert not names & HISTOGRAMS, "a histogram is queried by its _bucket, _sum or _count"


@pytest.mark.parametrize("query", QUERIES, ids=_id)
def test_query_filters_by_the_dashboard_variables(query: PanelQuery) -> None:
    for selector in re.findall(r"aliyun_vpn_[a-z_]+\{([^}]*)\}", query.expr):
        assert 'job=~"aliyun-vpn-exporter"' in selector
    for name in names_in(query.expr) & PER_GATEWAY:
        for selector in re.findall(rf"{name}\{{([^}}]*)\}}", query.expr):
            chosen = ('vpn_gateway_id=~".*"', f'vpn_gateway_id=~"{FIRST_VALUES["vpn_gateway_id"]}"')
            assert 'region_id=~".*"' in selector and any(c in selector for c in chosen)


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    promtool = tool(*PROMTOOL)
    queries = QUERIES + variable_queries() + annotation_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}:check", "expr": q.expr}
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_variable_queries_are_label_values_of_contract_series() -> None:
    queries = variable_queries()
    assert len(queries) == 3 * len(DASHBOARDS)
    for query in queries:
        assert names_in(query.expr) <= SERIES and query.required_labels


def test_dashboard_thresholds_are_the_alerting_thresholds() -> None:
    generate = _generator()
    rules = {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    assert f">= {generate.QUOTA_WARNING:.2f}" in rules["AliyunVpnQuotaUtilisationHigh"]
    assert f">= {generate.QUOTA_CRITICAL:.2f}" in rules["AliyunVpnQuotaUtilisationCritical"]
    assert f">= {generate.LOSS_WARNING:.2f}" in rules["AliyunVpnProbePacketLossHigh"]
    assert f">= {generate.RTT_WARNING:.3f}" in rules["AliyunVpnProbeLatencyHigh"]
    # The diagnosis age limit is no constant in the rules any more: the exporter exports it
    # (aliyun_vpn_diagnose_max_age_seconds), see tests/test_rules.py.


# tests/dashboard_queries.py itself: substitution as Grafana does it.

BOARD = {
    "templating": {
        "list": [
            {"name": "job", "type": "query", "multi": True, "includeAll": True, "allValue": ".*"},
            {"name": "gw", "type": "query", "multi": True, "includeAll": True, "allValue": ".*"},
            {"name": "single", "type": "custom", "multi": False, "includeAll": False},
        ]
    }
}


def test_substitution_turns_all_into_the_all_value_and_lists_into_a_regex() -> None:
    expr = 'rate(x{job=~"$job", gw=~"${gw}"}[$__rate_interval])'
    assert (
        substitute(expr, BOARD, {"job": ALL, "gw": ["vpn-a", "vpn-b"]})
        == 'rate(x{job=~".*", gw=~"(vpn-a|vpn-b)"}[1m])'
    )


def test_substitution_escapes_regex_characters_of_multi_value_variables() -> None:
    assert substitute('x{gw=~"$gw"}', BOARD, {"gw": "a.b"}) == 'x{gw=~"a\\\\.b"}'
    assert substitute('x{s="$single"}', BOARD, {"single": "a.b"}) == 'x{s="a.b"}'


def test_substitution_replaces_grafana_macros() -> None:
    expr = "increase(x[$__range]) / $__interval_ms"
    assert substitute(expr, BOARD, {"gw": ALL}, {"__range": "1h"}) == "increase(x[1h]) / 15000"


def test_substitution_refuses_an_unknown_variable() -> None:
    with pytest.raises(KeyError):
        substitute('x{a="$nope"}', BOARD)


def test_legend_labels_are_read_from_the_legend_format() -> None:
    assert legend_labels("p99 {{action}} {{ code }} {{action}}") == ("action", "code")


def test_problems_rejects_an_empty_result_and_series_without_the_labels() -> None:
    query = PanelQuery("d", "p", "A", "x", ("vpn_gateway_id",))
    assert problems(query, [])
    assert problems(query, [{"metric": {"job": "aliyun-vpn-exporter"}, "value": [0, "0"]}])
    assert not problems(query, [{"metric": {"vpn_gateway_id": "vpn-a"}, "value": [0, "1"]}])


# Provisioning, as docker-compose mounts it.


def _compose_mount(container_path: str) -> Path:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for volume in compose["services"]["grafana"]["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == container_path:
            return Path(COMPOSE.parent / source).resolve()
    raise AssertionError(f"{container_path} is not mounted into grafana")


def test_dashboard_provider_reads_the_dashboards_directory_where_compose_mounts_it() -> None:
    (provider_file,) = (PROVISIONING / "dashboards").glob("*.yml")
    config = yaml.safe_load(provider_file.read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert _compose_mount(provider["options"]["path"]) == DASHBOARD_DIR.resolve()
    assert _compose_mount("/etc/grafana/provisioning") == PROVISIONING.resolve()


def test_datasource_provisioning_points_at_the_compose_prometheus() -> None:
    (datasource_file,) = (PROVISIONING / "datasources").glob("*.yml")
    config = yaml.safe_load(datasource_file.read_text(encoding="utf-8"))
    (datasource,) = config["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    assert datasource["url"] == "http://prometheus:9090"
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert "prometheus" in compose["services"]
