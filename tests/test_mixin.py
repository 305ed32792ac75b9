"""The monitoring mixin (mixin/) is the one source of the shipped rules.

deploy/prometheus/aliyun-vpn-exporter.rules.yml and deploy/kubernetes/prometheusrule.yaml
are written by `python mixin/generate.py`; these tests evaluate the mixin with gojsonnet and
prove the shipped files are exactly its output, and that its _config does what it says.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.required_tools import REPO, module

GENERATOR = REPO / "mixin" / "generate.py"
INSTALL = "pip install gojsonnet"


def _generator() -> ModuleType:
    module("_gojsonnet", INSTALL)
    spec = importlib.util.spec_from_file_location("mixin_generate", GENERATOR)
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    return generate


def _alerts(groups: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for g in groups["groups"] for rule in g["rules"] if "alert" in rule}


def test_shipped_rule_files_are_the_mixin_output() -> None:
    generate = _generator()
    for path, text in generate.outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path}: run python mixin/generate.py"


def test_check_mode_fails_when_a_shipped_file_was_edited_by_hand(tmp_path: Path) -> None:
    generate = _generator()
    rules = tmp_path / "rules.yml"
    rules.write_text(generate.RULES.read_text(encoding="utf-8").replace("for: 10m", "for: 9m"))
    generate.RULES = rules
    assert generate.main(["--check"]) == 1


def test_config_sets_the_job_selector_and_durations() -> None:
    generate = _generator()
    alerts = _alerts(generate.evaluate("{ jobName: 'vpn', 'for'+: { exporterDown: '3m' } }"))
    assert alerts["AliyunVpnExporterDown"]["expr"] == 'up{job="vpn"} == 0'
    assert alerts["AliyunVpnExporterDown"]["for"] == "3m"
    assert alerts["AliyunVpnExporterAbsent"]["labels"]["job"] == "vpn"
    default = _alerts(generate.evaluate())
    assert default["AliyunVpnExporterDown"]["expr"] == 'up{job="aliyun-vpn-exporter"} == 0'


def test_mixin_exposes_the_generated_dashboards() -> None:
    gojsonnet = module("_gojsonnet", INSTALL)
    dashboards = json.loads(
        gojsonnet.evaluate_snippet(
            str(REPO / "mixin" / "dashboards.jsonnet"),
            "(import 'mixin.libsonnet').grafanaDashboards",
        )
    )
    shipped = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in (REPO / "grafana" / "dashboards").glob("*.json")
    }
    assert dashboards == shipped


def test_prometheus_rule_spec_is_the_rules_file() -> None:
    generate = _generator()
    outputs = generate.outputs()
    rules = yaml.safe_load(outputs[generate.RULES])
    manifest = yaml.safe_load(outputs[generate.PROMETHEUS_RULE])
    assert manifest["kind"] == "PrometheusRule" and manifest["spec"] == rules
