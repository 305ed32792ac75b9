"""Every Grafana panel query of grafana/dashboards/, ready to send to a real Prometheus.

Grafana macros and dashboard variables are substituted the way Grafana's Prometheus data
source does it (multi-value and "All" variables become regexes), and each query says which
labels its result must carry: the labels its legend names (`{{vpn_gateway_id}}`,
`{{action}} {{code}}`…). grafana/generate.py gives every query, tables included, a legend
naming what the query is about, so a result "returns data" only when it is non-empty and
every series carries those labels (an `or vector(0)` could not pass).

    from dashboard_queries import panel_queries, problems
    for q in panel_queries():
        result = prometheus_get("/api/v1/query", query=q.expr)["data"]["result"]
        assert not problems(q, result), q

Range panels are fine to evaluate as instant queries: their expressions are the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO / "grafana" / "dashboards"

ALL = "$__all"
"""A variable value meaning Grafana's "All" option."""

DEFAULT_VALUES: Mapping[str, str | Sequence[str]] = {
    "job": "aliyun-vpn-exporter",
    "region_id": ALL,
    "vpn_gateway_id": ALL,
}
"""The default job name of every example, and every region and gateway."""

FIRST_VALUES: Mapping[str, str] = {"vpn_gateway_id": "vpn-hz1healthy"}
"""What Grafana selects for a variable without "All" when nothing is chosen: its first
value, sorted. For the demo fleet that is its first gateway (the end-to-end test checks)."""

DEFAULT_MACROS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

_LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
# $name, ${name}, ${name:format} and [[name]], longest names first via the alternation below.
_VARIABLE = re.compile(
    r"\$\{(?P<braced>[a-zA-Z_][a-zA-Z0-9_]*)(?::(?P<fmt>[a-z]+))?\}"
    r"|\[\[(?P<old>[a-zA-Z_][a-zA-Z0-9_]*)\]\]"
    r"|\$(?P<plain>[a-zA-Z_][a-zA-Z0-9_]*)"
)
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel, with variables substituted."""

    dashboard: str
    """The dashboard's uid."""
    panel: str
    """The panel's title."""
    ref_id: str
    expr: str
    required_labels: tuple[str, ...]
    """Labels every series of a non-empty result must carry (from the legend)."""

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def iter_panels(board: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def legend_labels(legend: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_LEGEND_LABEL.findall(legend)))


def _regex_escape(value: str) -> str:
    # As Grafana's prometheusSpecialRegexEscape: a regex escape, its backslash itself
    # escaped for the PromQL string the value lands in.
    value = value.replace("\\", "\\\\\\\\")
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)


def _format(variable: Mapping[str, Any], value: str | Sequence[str]) -> str:
    multi_or_all = bool(variable.get("multi") or variable.get("includeAll"))
    if value == ALL and not variable.get("includeAll"):
        value = FIRST_VALUES[variable["name"]]
    if value == ALL:
        all_value = variable.get("allValue")
        if all_value is None:
            raise ValueError(f"variable {variable['name']} has no allValue to substitute")
        return str(all_value)
    if isinstance(value, str):
        if multi_or_all:
            return _regex_escape(value)
        return value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = [_regex_escape(v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(
    expr: str,
    board: Mapping[str, Any],
    values: Mapping[str, str | Sequence[str]] | None = None,
    macros: Mapping[str, str] | None = None,
) -> str:
    """`expr` with Grafana's macros and the dashboard's variables replaced."""
    macros = {**DEFAULT_MACROS, **(macros or {})}
    values = {**DEFAULT_VALUES, **(values or {})}
    variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("old") or match.group("plain")
        if name in macros:
            return macros[name]
        if name not in variables:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        if name not in values:
            raise KeyError(f"no value for variable ${name}; pass values={{{name!r}: ...}}")
        return _format(variables[name], values[name])

    return _VARIABLE.sub(replace, expr)


def panel_queries(
    paths: Iterable[Path] | None = None,
    values: Mapping[str, str | Sequence[str]] | None = None,
    macros: Mapping[str, str] | None = None,
) -> list[PanelQuery]:
    """Every Prometheus query of every panel of the given (default: all) dashboards."""
    queries = []
    for path in dashboard_files() if paths is None else paths:
        board = load(path)
        for panel in iter_panels(board):
            for target in panel.get("targets", []):
                if target.get("hide") or "expr" not in target:
                    continue
                queries.append(
                    PanelQuery(
                        dashboard=board["uid"],
                        panel=panel.get("title", ""),
                        ref_id=target.get("refId", ""),
                        expr=substitute(target["expr"], board, values, macros),
                        required_labels=legend_labels(target.get("legendFormat", "")),
                    )
                )
    return queries


def annotation_queries(
    paths: Iterable[Path] | None = None,
    values: Mapping[str, str | Sequence[str]] | None = None,
) -> list[PanelQuery]:
    """The Prometheus annotation queries of the dashboards; the labels their title and text
    name are the labels they are about (`{{alertname}}`)."""
    queries = []
    for path in dashboard_files() if paths is None else paths:
        board = load(path)
        for annotation in board.get("annotations", {}).get("list", []):
            if "expr" not in annotation:
                continue
            queries.append(
                PanelQuery(
                    dashboard=board["uid"],
                    panel=f"annotation {annotation['name']}",
                    ref_id="",
                    expr=substitute(annotation["expr"], board, values),
                    required_labels=legend_labels(annotation.get("titleFormat", "")),
                )
            )
    return queries


_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)\s*$", re.S)


def variable_queries(
    paths: Iterable[Path] | None = None,
    values: Mapping[str, str | Sequence[str]] | None = None,
) -> list[PanelQuery]:
    """The series query behind each `label_values(selector, label)` variable."""
    queries = []
    for path in dashboard_files() if paths is None else paths:
        board = load(path)
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            definition = variable["query"]
            if isinstance(definition, Mapping):
                definition = definition.get("query", "")
            match = _LABEL_VALUES.match(definition)
            if not match or not match.group("selector"):
                raise ValueError(f"{path.name}: ${variable['name']} is not label_values(sel, l)")
            queries.append(
                PanelQuery(
                    dashboard=board["uid"],
                    panel=f"${variable['name']}",
                    ref_id="",
                    expr=substitute(match.group("selector"), board, values),
                    required_labels=(match.group("label"),),
                )
            )
    return queries


def problems(query: PanelQuery, result: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why a Prometheus `data.result` (vector or matrix) does not prove `query` returns data."""
    if not result:
        return [f"empty result: {query}"]
    found = []
    for series in result:
        labels = series.get("metric", {})
        missing = [name for name in query.required_labels if not labels.get(name)]
        if missing:
            found.append(f"series {labels} lacks {missing}: {query}")
    return found


_HISTOGRAM_PART = re.compile(r"_(bucket|sum|count)$")
README = REPO / "README.md"
NOT_ON_A_DASHBOARD = "### Metrics not on a dashboard"


def families(series_names: Iterable[str]) -> set[str]:
    """Metric family names of exposed series names (a histogram's `_bucket`, `_sum` and
    `_count` are one family; counters keep their `_total`)."""
    names = set(series_names)
    # prometheus_client's `_created` series belong to their counter or histogram.
    names = {n for n in names if not (n.endswith("_created") and _created_of(n, names))}
    return {
        base if (base := _HISTOGRAM_PART.sub("", name)) + "_bucket" in names else name
        for name in names
    }


def _created_of(name: str, names: set[str]) -> bool:
    base = name.removesuffix("_created")
    return f"{base}_total" in names or f"{base}_bucket" in names


def not_on_a_dashboard(readme: Path = README) -> list[str]:
    """The metric names (or `prefix_*` patterns) the README's "Metrics not on a dashboard"
    section lists, each with the reason beside it."""
    text = readme.read_text(encoding="utf-8")
    section = text.split(NOT_ON_A_DASHBOARD, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^[-|] *`([a-z_:*]+)`", section, re.M)


def on_a_dashboard(family: str) -> bool:
    """Whether a dashboard query selects the family, or the README says why none does."""
    exprs = [q.expr for q in panel_queries()]
    selected = any(
        re.search(rf"(?<![\w:]){family}(_bucket|_sum|_count)?(?![\w:])", e) for e in exprs
    )
    listed = any(
        family == name or (name.endswith("*") and family.startswith(name[:-1]))
        for name in not_on_a_dashboard()
    )
    return selected or listed
