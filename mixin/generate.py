"""Write the shipped Prometheus rules from the monitoring mixin (mixin/*.libsonnet).

    python mixin/generate.py           # rewrite the files below
    python mixin/generate.py --check   # exit 1 when a shipped file differs from the mixin

Writes deploy/prometheus/aliyun-vpn-exporter.rules.yml (recording rules first, then the
alerts) and deploy/kubernetes/prometheusrule.yaml (the same groups for the Prometheus
Operator). Needs `gojsonnet` (pip install gojsonnet; in the `test` extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import _gojsonnet
import yaml

MIXIN = Path(__file__).resolve().parent
REPO = MIXIN.parent
RULES = REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml"
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"
RULE_KEYS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")
ANNOTATION_KEYS = ("summary", "description", "dashboard_url", "runbook_url")

RULES_HEADER = """\
# Recording and alerting rules for aliyun-vpn-exporter. GENERATED from the monitoring
# mixin in mixin/ by `python mixin/generate.py`: edit the mixin, not this file (a test fails
# while they differ). Thresholds and `for:` durations: mixin/config.libsonnet; the README's
# alert table says why each alert exists. Unit tests: `promtool test rules
# deploy/prometheus/tests/*.yml`. Load with `rule_files:` in prometheus.yml.
"""
PROMETHEUS_RULE_HEADER = """\
# The rules of deploy/prometheus/aliyun-vpn-exporter.rules.yml for the Prometheus Operator.
# GENERATED from mixin/ by `python mixin/generate.py`: edit the mixin, not this file. Your
# Prometheus may select rules by a label (kube-prometheus-stack: release: <its release>).
"""


def evaluate(config: str = "{}") -> dict[str, Any]:
    """The mixin's rule groups, recording rules first, with `config` merged into _config."""
    snippet = (
        f"local mixin = (import 'mixin.libsonnet') + {{ _config+:: {config} }};\n"
        "{ groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups }\n"
    )
    text = _gojsonnet.evaluate_snippet(str(MIXIN / "render.jsonnet"), snippet)
    result: dict[str, Any] = json.loads(text)
    return result


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences (as yamllint wants), multi-line strings (PromQL)
    as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _ordered(rule: dict[str, Any]) -> dict[str, Any]:
    assert set(rule) <= set(RULE_KEYS), sorted(set(rule) - set(RULE_KEYS))
    ordered = {key: rule[key] for key in RULE_KEYS if key in rule}
    if "annotations" in rule:
        annotations = rule["annotations"]
        assert set(annotations) <= set(ANNOTATION_KEYS), sorted(annotations)
        ordered["annotations"] = {k: annotations[k] for k in ANNOTATION_KEYS if k in annotations}
    return ordered


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=80, allow_unicode=True)


def render_rules(groups: dict[str, Any]) -> str:
    tidy = [
        {"name": group["name"], "rules": [_ordered(rule) for rule in group["rules"]]}
        for group in groups["groups"]
    ]
    return RULES_HEADER + _dump({"groups": tidy})


def render_prometheus_rule(rules_text: str) -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "aliyun-vpn-exporter",
            "labels": {
                "app.kubernetes.io/name": "aliyun-vpn-exporter",
                "app.kubernetes.io/component": "exporter",
            },
        },
        "spec": yaml.safe_load(rules_text),
    }
    return PROMETHEUS_RULE_HEADER + _dump(manifest)


def outputs() -> dict[Path, str]:
    rules = render_rules(evaluate())
    return {RULES: rules, PROMETHEUS_RULE: render_prometheus_rule(rules)}


def main(argv: list[str]) -> int:
    stale = [path for path, text in outputs().items() if path.read_text(encoding="utf-8") != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} differs from the mixin: run mixin/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
