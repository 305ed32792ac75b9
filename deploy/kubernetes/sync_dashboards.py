"""Write deploy/kubernetes/dashboards/dashboards.yaml from grafana/dashboards/*.json.

One ConfigMap per dashboard, labelled `grafana_dashboard: "1"` for the Grafana sidecar
(kube-prometheus-stack, the Grafana Helm chart's `sidecar.dashboards`), which loads every
ConfigMap with that label; the `grafana_folder` annotation names the folder where the
sidecar is set to read it. The JSON is carried verbatim. Kustomize cannot read
../../grafana itself (its load restrictor), hence this file. Run after the dashboards
change (grafana/generate.py); `--check` exits 1 when the ConfigMaps are out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE.parent.parent / "grafana" / "dashboards"
OUTPUT = HERE / "dashboards" / "dashboards.yaml"
FOLDER = "Alibaba Cloud VPN"

HEADER = """\
# Grafana dashboards as ConfigMaps for the Grafana sidecar, written by
# deploy/kubernetes/sync_dashboards.py from grafana/dashboards/*.json (do not edit).
"""


def _config_map(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    body = "".join(f"    {line}" if line.strip() else line for line in text.splitlines(True))
    return (
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {path.stem}-dashboard\n"
        "  labels:\n"
        '    grafana_dashboard: "1"\n'
        "    app.kubernetes.io/name: aliyun-vpn-exporter\n"
        "    app.kubernetes.io/component: dashboards\n"
        "  annotations:\n"
        f"    grafana_folder: {FOLDER}\n"
        "data:\n"
        f"  {path.name}: |\n"
        f"{body}"
    )


def render() -> str:
    return HEADER + "".join(_config_map(path) for path in sorted(DASHBOARDS.glob("*.json")))


def main(argv: list[str]) -> int:
    expected = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != expected:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
