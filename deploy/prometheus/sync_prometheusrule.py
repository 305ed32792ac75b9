"""Write deploy/kubernetes/prometheusrule.yaml from aliyun-vpn-exporter.rules.yml.

The PrometheusRule carries the rules file's groups verbatim (comments included), indented
under `spec:`. Run after editing the rules; `--check` exits 1 when the two differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "aliyun-vpn-exporter.rules.yml"
PROMETHEUS_RULE = HERE.parent / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# The alerting and recording rules of deploy/prometheus/aliyun-vpn-exporter.rules.yml for
# the Prometheus Operator: the same groups under spec, written by
# deploy/prometheus/sync_prometheusrule.py (edit the rules file, then run it). Thresholds are
# explained in the rules file. Your Prometheus may select rules by a label
# (kube-prometheus-stack: release: <its release name>).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: aliyun-vpn-exporter
  labels:
    app.kubernetes.io/name: aliyun-vpn-exporter
    app.kubernetes.io/component: exporter
spec:
"""


def render(rules_text: str) -> str:
    body = rules_text[rules_text.index("\ngroups:") + 1 :]
    return HEADER + "".join("  " + line if line.strip() else line for line in body.splitlines(True))


def main(argv: list[str]) -> int:
    expected = render(RULES.read_text(encoding="utf-8"))
    if "--check" in argv:
        if PROMETHEUS_RULE.read_text(encoding="utf-8") != expected:
            print(f"{PROMETHEUS_RULE} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PROMETHEUS_RULE.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
