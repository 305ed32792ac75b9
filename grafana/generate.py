"""Build the Grafana dashboards in grafana/dashboards/ from code.

    python grafana/generate.py          # rewrite grafana/dashboards/*.json
    python grafana/generate.py --check  # exit 1 if the committed JSON is not what this builds

Needs `grafana-foundation-sdk==1769699379!11.6.0` (a plain install picks the old 10.1
schema). Commit the output with this file: users provision the JSON, and
tests/test_dashboards_static.py checks the two agree.

Every query names the labels it is about in its legend (`{{vpn_gateway_id}}`, `{{action}}`…),
also on tables, where Grafana ignores the legend: tests/dashboard_queries.py reads the legend
to know which labels a query's result must carry.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BarGaugeDisplayMode,
    BigValueColorMode,
    BigValueGraphMode,
    BigValueTextMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    TableCellBackgroundDisplayMode,
    TableColoredBackgroundCellOptions,
    VisibilityMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
TAG = "aliyun-vpn"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label selectors built from the dashboard variables.
JOB = 'job=~"$job"'
GATEWAYS = f'{JOB}, region_id=~"$region_id", vpn_gateway_id=~"$vpn_gateway_id"'
REGIONS = 'region_id=~"$region_id"'
THROTTLED = f'{JOB}, code=~"Throttling.*"'
REAL_FAILURES = f'{JOB}, code!="InvalidVpnGatewayId.NotFound"'
NO_DIAGNOSIS_ANSWERS = f'{JOB}, code="InvalidVpnGatewayId.NotFound"'

# 0 normal, 1 warning, 2 error for every item: all three levels of the state set are exported.
LEVEL_SCORE = (
    f'2 * aliyun_vpn_diagnose_item_status{{level="error", {GATEWAYS}}}\n'
    f'+ ignoring (level) aliyun_vpn_diagnose_item_status{{level="warning", {GATEWAYS}}}'
)
WORST_LEVEL_BY_GATEWAY = f"max by (target, region_id, vpn_gateway_id) (\n{LEVEL_SCORE}\n)"

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"
LEVEL_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="normal", color=GREEN, index=0),
            "1": ValueMappingResult(text="warning", color=ORANGE, index=1),
            "2": ValueMappingResult(text="error", color=RED, index=2),
        }
    )
]
YES_NO_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="no", color=RED, index=0),
            "1": ValueMappingResult(text="yes", color=GREEN, index=1),
        }
    )
]
RUNNING_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="finished", color=GREEN, index=0),
            "1": ValueMappingResult(text="running", color=BLUE, index=1),
        }
    )
]
UP_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="down", color=RED, index=0),
            "1": ValueMappingResult(text="up", color=GREEN, index=1),
        }
    )
]
ESTABLISHED_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="not established", color=RED, index=0),
            "1": ValueMappingResult(text="established", color=GREEN, index=1),
        }
    )
]
SUCCESS_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="failing", color=RED, index=0),
            "1": ValueMappingResult(text="success", color=GREEN, index=1),
        }
    )
]
DIAGNOSIS_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(
                text="none yet: InvalidVpnGatewayId.NotFound, no item data", color=ORANGE, index=0
            ),
            "1": ValueMappingResult(text="available", color=GREEN, index=1),
        }
    )
]
POLL_MAPPINGS: list[ValueMapping] = [
    ValueMap(
        options={
            "0": ValueMappingResult(text="failing", color=RED, index=0),
            "1": ValueMappingResult(text="ok", color=GREEN, index=1),
        }
    )
]

# Same thresholds as deploy/prometheus/aliyun-vpn-exporter.rules.yml.
QUOTA_WARNING, QUOTA_CRITICAL = 0.80, 0.95
LOSS_WARNING = 0.05
RTT_WARNING = 0.150


NO_DIAGNOSIS_YET = "InvalidVpnGatewayId.NotFound"
"""The API's normal answer for a gateway never diagnosed: counted by the exporter under this
code, but not a failure (DESIGN "Failure semantics")."""
ESTABLISHED = "ipsec_sa_established"
GATEWAY_DETAIL = "/d/aliyun-vpn-gateway/aliyun-vpn-gateway-detail"
DETAIL_LINK = {
    "title": "Gateway detail: ${__data.fields.vpn_gateway_id}",
    "url": f"{GATEWAY_DETAIL}?var-vpn_gateway_id=${{__data.fields.vpn_gateway_id}}"
    "&var-region_id=$__all&${job:queryparam}&${datasource:queryparam}&${__url_time_range}",
}
"""A data link from a row about a gateway to its detail dashboard (the row's frame must have
a `vpn_gateway_id` field)."""
NO_DIAGNOSIS_HELP = (
    "A gateway that was never diagnosed has no item, quota or probe data: "
    "GetVpnGatewayDiagnoseResult answers InvalidVpnGatewayId.NotFound, the exporter sets "
    "aliyun_vpn_diagnose_available to 0, and every diagnosis panel stays empty for it. Run a "
    "diagnosis in the VPN console, or let the exporter start them (diagnose.enabled)."
)

QUOTA_LEGEND = "{{vpn_gateway_id}} {{quota_name}}"
CONNECTION_LEGEND = "{{vpn_gateway_id}} {{vpn_connection_id}}"
PROBE_LEGEND = "{{vpn_gateway_id}} {{vpn_connection_id}} {{item}} {{target_ip}}"
HIDDEN_COLUMNS = {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True}


def column_order(*names: str) -> dict[str, int]:
    return {name: index for index, name in enumerate(names)}


def organize(**options: Any) -> DataTransformerConfig:
    return DataTransformerConfig(id_val="organize", options=options)


def fixed_color(color: str) -> DynamicConfigValue:
    return DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def dashed(panel: timeseries.Panel, *steps: tuple[float | None, str]) -> timeseries.Panel:
    """Draw the alerting thresholds on a time series panel."""
    return panel.thresholds(thresholds(*steps)).thresholds_style(
        common.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED)
    )


def query(
    expr: str,
    legend: str,
    ref_id: str = "A",
    *,
    instant: bool = False,
    table_format: bool = False,
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
    q = q.instant() if instant else q.range()
    if table_format:
        q = q.format(PromQueryFormat.TABLE)
    return q


def rate(metric: str, selector: str) -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def ts(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .legend(
            common.VizLegendOptions()
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .fill_opacity(10)
        .span(12)
        .height(8)
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single_stat(
    title: str, description: str, q: prometheus.Dataquery, *, width: int = 6, height: int = 4
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(q)
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .text_mode(BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(width)
        .height(height)
    )


def bars(
    title: str, description: str, q: prometheus.Dataquery, unit: str, *, width: int = 8
) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(q)
        .unit(unit)
        .min(0)
        .display_mode(BarGaugeDisplayMode.BASIC)
        .orientation(VizOrientation.HORIZONTAL)
        .span(width)
        .height(10)
    )


def table_of(
    title: str,
    description: str,
    *queries: prometheus.Dataquery,
    width: int = 12,
    height: int = 6,
) -> table.Panel:
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(width)
        .height(height)
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def linked_to_detail(panel: table.Panel) -> table.Panel:
    """Every cell of the table's rows opens the row's gateway in the detail dashboard."""
    return panel.override_by_regexp(".*", [DynamicConfigValue(id_val="links", value=[DETAIL_LINK])])


CONNECTION_KEY = "target, region_id, vpn_gateway_id, vpn_connection_id"
TUNNEL_KEY = f"{CONNECTION_KEY}, tunnel_id"


def _status_as_label(metric: str, label: str, key: str = CONNECTION_KEY) -> str:
    """The current value of a status series (gauge 1 with a `status` label) as `label`."""
    return (
        f"max by ({key}, {label}) (\n"
        f'  label_replace({metric}{{{GATEWAYS}}} == 1, "{label}", "$1", "status", "(.*)")\n)'
    )


def tunnels_table() -> table.Panel:
    """Each tunnel of the dual-tunnel connections: role, state and IPsec status."""
    legend = "{{vpn_gateway_id}} {{vpn_connection_id}} {{tunnel_id}}"
    return (
        table_of(
            "Tunnels",
            "The two tunnels of each dual-tunnel connection (DescribeVpnConnections "
            "TunnelOptions): role, State and IPsec negotiation Status.",
            query(
                f"max by ({TUNNEL_KEY}, role) (aliyun_vpn_tunnel_info{{{GATEWAYS}}})",
                f"{legend} {{{{role}}}}",
                "A",
                instant=True,
                table_format=True,
            ),
            query(
                f"max by ({TUNNEL_KEY}, state) (aliyun_vpn_tunnel_state{{{GATEWAYS}}})",
                f"{legend} {{{{state}}}}",
                "B",
                instant=True,
                table_format=True,
            ),
            query(
                _status_as_label("aliyun_vpn_tunnel_ipsec_status", "ipsec", TUNNEL_KEY),
                f"{legend} {{{{ipsec}}}}",
                "C",
                instant=True,
                table_format=True,
            ),
            width=24,
            height=5,
        )
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                excludeByName={**HIDDEN_COLUMNS, **{f"Value #{ref}": True for ref in "ABC"}},
                indexByName=column_order(
                    "vpn_gateway_id", "vpn_connection_id", "tunnel_id", "role", "state", "ipsec"
                ),
            )
        )
    )


def _success_or_zero(metric: str) -> str:
    """1 while a connection's status series says `success`, 0 for any other status."""
    by = "max by (vpn_gateway_id, vpn_connection_id)"
    return f'{by} ({metric}{{status="success", {GATEWAYS}}})\nor\n0 * {by} ({metric}{{{GATEWAYS}}})'


def connections_table(title: str, *, width: int, height: int) -> table.Panel:
    """Every IPsec connection: its IPsec, BGP and health-check status and tunnels up."""
    legend = "{{vpn_gateway_id}} {{vpn_connection_id}}"
    return (
        table_of(
            title,
            "DescribeVpnConnections, refreshed every poll interval: the connection's IPsec "
            "negotiation status, BGP (VpnBgpConfig.Status) and health check "
            "(VcoHealthCheck.Status) when it reports them, and how many of a dual-tunnel "
            "connection's tunnels have an established IPsec SA.",
            query(
                _status_as_label("aliyun_vpn_connection_ipsec_status", "ipsec"),
                f"{legend} {{{{ipsec}}}}",
                "A",
                instant=True,
                table_format=True,
            ),
            query(
                _status_as_label("aliyun_vpn_connection_bgp_status", "bgp"),
                f"{legend} {{{{bgp}}}}",
                "B",
                instant=True,
                table_format=True,
            ),
            query(
                _status_as_label("aliyun_vpn_connection_health_check_status", "health_check"),
                f"{legend} {{{{health_check}}}}",
                "C",
                instant=True,
                table_format=True,
            ),
            query(
                "sum by (target, region_id, vpn_gateway_id, vpn_connection_id) ("
                f'aliyun_vpn_tunnel_ipsec_status{{status="{ESTABLISHED}", {GATEWAYS}}})',
                legend,
                "D",
                instant=True,
                table_format=True,
            ),
            query(
                f"max by ({CONNECTION_KEY}, state) (aliyun_vpn_connection_state{{{GATEWAYS}}})",
                f"{legend} {{{{state}}}}",
                "E",
                instant=True,
                table_format=True,
            ),
            query(
                f"max by ({CONNECTION_KEY}, name, attach_type) ("
                f"aliyun_vpn_connection_info{{{GATEWAYS}}})",
                f"{legend} {{{{name}}}}",
                "F",
                instant=True,
                table_format=True,
            ),
            width=width,
            height=height,
        )
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                excludeByName={
                    **HIDDEN_COLUMNS,
                    **{f"Value #{ref}": True for ref in "ABCEF"},
                },
                renameByName={"Value #D": "tunnels up", "health_check": "health check"},
                indexByName=column_order(
                    "vpn_gateway_id",
                    "vpn_connection_id",
                    "name",
                    "state",
                    "ipsec",
                    "bgp",
                    "health_check",
                ),
            )
        )
        .override_by_name(
            "ipsec",
            [
                DynamicConfigValue(
                    id_val="mappings",
                    value=[
                        {
                            "type": "value",
                            "options": {
                                ESTABLISHED: {"color": GREEN, "index": 0},
                            },
                        },
                        {
                            "type": "regex",
                            "options": {"pattern": ".+", "result": {"color": RED, "index": 1}},
                        },
                    ],
                ),
                DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
    )


def connection_timelines() -> list[statetimeline.Panel]:
    """IPsec SA of each connection and tunnel, and BGP and health check, over time."""
    tunnel_legend = "{{vpn_gateway_id}} {{vpn_connection_id}} {{tunnel_id}}"
    return [
        timeline(
            "Connection IPsec SA",
            "Whether each connection's IPsec SA is established (its Status is "
            "ipsec_sa_established); AliyunVpnIpsecSaNotEstablished fires after 10 minutes.",
            ESTABLISHED_MAPPINGS,
            query(
                f'aliyun_vpn_connection_ipsec_status{{status="{ESTABLISHED}", {GATEWAYS}}}',
                CONNECTION_LEGEND,
            ),
        ),
        timeline(
            "Tunnel IPsec SA",
            "Each tunnel of a dual-tunnel connection: established or not. One tunnel down "
            "loses redundancy; both down is the connection down.",
            ESTABLISHED_MAPPINGS,
            query(
                f'aliyun_vpn_tunnel_ipsec_status{{status="{ESTABLISHED}", {GATEWAYS}}}',
                tunnel_legend,
            ),
        ),
        timeline(
            "BGP and health check",
            "success, or failing for any other VpnBgpConfig.Status / VcoHealthCheck.Status "
            "(absent when the connection has no BGP or its health check is disabled).",
            SUCCESS_MAPPINGS,
            query(
                _success_or_zero("aliyun_vpn_connection_bgp_status"),
                f"BGP {CONNECTION_LEGEND}",
                "A",
            ),
            query(
                _success_or_zero("aliyun_vpn_connection_health_check_status"),
                f"health check {CONNECTION_LEGEND}",
                "B",
            ),
        ),
    ]


def timeline(
    title: str,
    description: str,
    mappings: list[ValueMapping],
    *queries: prometheus.Dataquery,
    width: int = 24,
    height: int = 6,
) -> statetimeline.Panel:
    panel = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .mappings(mappings)
        .show_value(VisibilityMode.NEVER)
        .span(width)
        .height(height)
    )
    for q in queries:
        panel = panel.with_target(q)
    return panel


def query_variable(
    name: str, label: str, definition: str, *, single: bool = False
) -> dashboard.QueryVariable:
    """A variable of label values: multi-value with "All" (`.*`), or with `single` one
    value at a time (Grafana then selects the first value)."""
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(definition)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if single:
        return variable.multi(False).include_all(False)
    return variable.multi(True).include_all(True).all_value(".*")


def base(
    uid: str, title: str, description: str, *, single_gateway: bool = False
) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("Aliyun VPN dashboards")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(query_variable("job", "Job", "label_values(aliyun_vpn_build_info, job)"))
        .with_variable(
            query_variable(
                "region_id", "Region", f"label_values(aliyun_vpn_poll_success{{{JOB}}}, region_id)"
            )
        )
        .with_variable(
            query_variable(
                "vpn_gateway_id",
                "VPN gateway",
                f"label_values(aliyun_vpn_poll_success{{{JOB}, {REGIONS}}}, vpn_gateway_id)",
                single=single_gateway,
            )
        )
    )


def fleet_overview() -> dashboard.Dashboard:
    gateways_by_level = (
        "count by (level) (\n"
        f'  label_replace({WORST_LEVEL_BY_GATEWAY} == 2, "level", "error", "", "")\n'
        f'  or label_replace({WORST_LEVEL_BY_GATEWAY} == 1, "level", "warning", "", "")\n'
        f'  or label_replace({WORST_LEVEL_BY_GATEWAY} == 0, "level", "normal", "", "")\n'
        ")"
    )
    return (
        base(
            "aliyun-vpn-fleet",
            "Aliyun VPN / Fleet overview",
            "Every VPN gateway's latest quick diagnosis: levels, quotas and the worst probes.",
        )
        .with_row(dashboard.Row("Levels"))
        .with_panel(
            single_stat(
                "Gateways by worst item level",
                "Each gateway counted once, at the worst level of its latest diagnosis.",
                query(gateways_by_level, "{{level}}", instant=True),
                width=12,
                height=6,
            )
            .thresholds(thresholds((None, BLUE)))
            .override_by_name("normal", [fixed_color(GREEN)])
            .override_by_name("warning", [fixed_color(ORANGE)])
            .override_by_name("error", [fixed_color(RED)])
        )
        .with_panel(
            linked_to_detail(
                table_of(
                    "Gateways without a diagnosis",
                    f"Nothing about these gateways can alert. {NO_DIAGNOSIS_HELP}",
                    query(
                        f"aliyun_vpn_diagnose_available{{{GATEWAYS}}} == 0",
                        "{{region_id}} {{vpn_gateway_id}}",
                        instant=True,
                        table_format=True,
                    ),
                ).with_transformation(
                    organize(
                        excludeByName=HIDDEN_COLUMNS,
                        indexByName=column_order("target", "region_id", "vpn_gateway_id"),
                    )
                )
            )
        )
        .with_panel(
            linked_to_detail(
                table_of(
                    "Item levels by gateway",
                    "The level of each item in every gateway's latest diagnosis.",
                    query(
                        f"max by (vpn_gateway_id, item) (\n{LEVEL_SCORE}\n)",
                        "{{vpn_gateway_id}} {{item}}",
                        instant=True,
                        table_format=True,
                    ),
                    width=24,
                    height=8,
                )
                .with_transformation(
                    DataTransformerConfig(
                        id_val="groupingToMatrix",
                        options={
                            "columnField": "item",
                            "rowField": "vpn_gateway_id",
                            "valueField": "Value",
                            "emptyValue": "null",
                        },
                    )
                )
                # The matrix names its first column "vpn_gateway_id\\item": the link needs it
                # as vpn_gateway_id.
                .with_transformation(
                    organize(renameByName={"vpn_gateway_id\\item": "vpn_gateway_id"})
                )
                .mappings(LEVEL_MAPPINGS)
                .cell_options(
                    TableColoredBackgroundCellOptions(mode=TableCellBackgroundDisplayMode.BASIC)
                )
                # Keep the column's name: the row link reads ${__data.fields.vpn_gateway_id},
                # which a displayName override would hide.
                .override_by_name(
                    "vpn_gateway_id",
                    [DynamicConfigValue(id_val="custom.cellOptions", value={"type": "auto"})],
                )
            )
        )
        .with_panel(
            ts(
                "Items at warning or error",
                "How many items are at each level over time.",
                "short",
                query(
                    "sum by (level) (aliyun_vpn_diagnose_item_status"
                    f'{{level=~"warning|error", {GATEWAYS}}})',
                    "{{level}}",
                ),
            )
            .override_by_name("warning", [fixed_color(ORANGE)])
            .override_by_name("error", [fixed_color(RED)])
        )
        .with_panel(
            bars(
                "Diagnosis age against its limit",
                "Time since each gateway's newest diagnosis finished, as a share of its "
                "target's aliyun_vpn_diagnose_max_age_seconds: at 100 % the diagnosis counts "
                "as stale, item alerts stop and AliyunVpnDiagnosisStale fires instead.",
                query(
                    "sort_desc(\n  (time() - max by (target, region_id, vpn_gateway_id) ("
                    f"aliyun_vpn_diagnose_finish_timestamp_seconds{{{GATEWAYS}}} > 0))\n"
                    "  / on (target) group_left ()\n"
                    f"  aliyun_vpn_diagnose_max_age_seconds{{{JOB}}}\n)",
                    "{{vpn_gateway_id}}",
                    instant=True,
                ),
                "percentunit",
                width=12,
            )
            .thresholds(thresholds((None, GREEN), (0.75, ORANGE), (1, RED)))
            .height(8)
        )
        .with_row(dashboard.Row("Quotas and probes"))
        .with_panel(
            bars(
                "Quota utilisation",
                "used / quantity of each quota item, highest first.",
                query(
                    f"sort_desc(\n  aliyun_vpn_quota_used{{{GATEWAYS}}}\n"
                    f"/ (aliyun_vpn_quota_limit{{{GATEWAYS}}} > 0)\n)",
                    QUOTA_LEGEND,
                    instant=True,
                ),
                "percentunit",
            )
            .max(1)
            .display_mode(BarGaugeDisplayMode.GRADIENT)
            .thresholds(thresholds((None, GREEN), (QUOTA_WARNING, ORANGE), (QUOTA_CRITICAL, RED)))
        )
        .with_panel(
            bars(
                "Highest packet loss",
                "The ten probes losing the most packets.",
                query(
                    f"topk(10, aliyun_vpn_probe_packet_loss_ratio{{{GATEWAYS}}})",
                    PROBE_LEGEND,
                    instant=True,
                ),
                "percentunit",
            )
            .max(1)
            .thresholds(thresholds((None, GREEN), (LOSS_WARNING, ORANGE), (1, RED)))
        )
        .with_panel(
            bars(
                "Highest round-trip time",
                "The ten probes with the longest round-trip time (no reply: no RTT).",
                query(
                    f"topk(10, aliyun_vpn_probe_rtt_seconds{{{GATEWAYS}}})",
                    PROBE_LEGEND,
                    instant=True,
                ),
                "s",
            ).thresholds(thresholds((None, GREEN), (RTT_WARNING, ORANGE)))
        )
        .with_panel(
            linked_to_detail(
                table_of(
                    "Unreachable probes",
                    "Probes that got no reply or lost every packet.",
                    query(
                        f"aliyun_vpn_probe_reachable{{{GATEWAYS}}} == 0",
                        PROBE_LEGEND,
                        instant=True,
                        table_format=True,
                    ),
                    width=24,
                ).with_transformation(
                    organize(
                        excludeByName=HIDDEN_COLUMNS,
                        indexByName=column_order(
                            "target",
                            "region_id",
                            "vpn_gateway_id",
                            "vpn_connection_id",
                            "item",
                            "source_ip",
                            "target_ip",
                        ),
                    )
                )
            )
        )
        .with_row(dashboard.Row("Connections and tunnels"))
        .with_panel(
            single_stat(
                "Connections by IPsec status",
                "Every connection counted once, by its IPsec negotiation status "
                "(DescribeVpnConnections).",
                query(
                    f"count by (status) (aliyun_vpn_connection_ipsec_status{{{GATEWAYS}}} == 1)",
                    "{{status}}",
                    instant=True,
                ),
                width=6,
                height=8,
            )
            .thresholds(thresholds((None, RED)))
            .override_by_name(ESTABLISHED, [fixed_color(GREEN)])
        )
        .with_panel(linked_to_detail(connections_table("Connections", width=18, height=8)))
        .with_panel(
            timeline(
                "Connection IPsec SA",
                "Whether each connection's IPsec SA is established, over time.",
                ESTABLISHED_MAPPINGS,
                query(
                    f'aliyun_vpn_connection_ipsec_status{{status="{ESTABLISHED}", {GATEWAYS}}}',
                    CONNECTION_LEGEND,
                ),
                height=8,
            )
        )
    )


def gateway_detail() -> dashboard.Dashboard:
    board = (
        base(
            "aliyun-vpn-gateway",
            "Aliyun VPN / Gateway detail",
            "A VPN gateway's connections, tunnels and diagnoses over time: probes per "
            "connection, quotas, diagnosis age and polls. Shows one gateway at a time.",
            single_gateway=True,
        )
        .with_row(dashboard.Row("Gateway"))
        .with_panel(
            table_of(
                "Gateway",
                "DescribeVpnGateways: name, VPC, spec and status.",
                query(
                    f"aliyun_vpn_gateway_info{{{GATEWAYS}}}",
                    "{{vpn_gateway_id}} {{name}}",
                    instant=True,
                    table_format=True,
                ),
            ).with_transformation(
                organize(
                    excludeByName=HIDDEN_COLUMNS,
                    indexByName=column_order(
                        "vpn_gateway_id", "name", "region_id", "vpc_id", "spec", "status"
                    ),
                )
            )
        )
        .with_panel(
            table_of(
                "Items",
                "Level of each item in the latest diagnosis, per connection.",
                query(
                    f"max by (vpn_gateway_id, vpn_connection_id, item) (\n{LEVEL_SCORE}\n)",
                    "{{vpn_gateway_id}} {{vpn_connection_id}} {{item}}",
                    instant=True,
                    table_format=True,
                ),
            )
            .with_transformation(
                organize(excludeByName={"Time": True}, renameByName={"Value": "level"})
            )
            .mappings(LEVEL_MAPPINGS)
            .override_by_name(
                "level",
                [
                    DynamicConfigValue(
                        id_val="custom.cellOptions",
                        value={"type": "color-background", "mode": "basic"},
                    )
                ],
            )
        )
        .with_panel(
            single_stat(
                "Diagnosis",
                NO_DIAGNOSIS_HELP,
                query(
                    f"aliyun_vpn_diagnose_available{{{GATEWAYS}}}",
                    "{{vpn_gateway_id}}",
                    instant=True,
                ),
                width=18,
                height=3,
            )
            .mappings(DIAGNOSIS_MAPPINGS)
            .text_mode(BigValueTextMode.VALUE)
        )
        .with_panel(
            single_stat(
                "Gateway found",
                "Whether the API knows the gateway: no after InvalidVpnGatewayInstanceId.NotFound "
                "for a configured gateway (a key of another account, or a gateway deleted "
                "without updating the config; AliyunVpnGatewayNotFound).",
                query(
                    f"aliyun_vpn_gateway_found{{{GATEWAYS}}}", "{{vpn_gateway_id}}", instant=True
                ),
                height=3,
            ).mappings(YES_NO_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Last poll",
                "Whether the exporter's last poll of the gateway succeeded.",
                query(f"aliyun_vpn_poll_success{{{GATEWAYS}}}", "{{vpn_gateway_id}}", instant=True),
            ).mappings(POLL_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Diagnosis age",
                "Time since the connection's latest diagnosis finished.",
                query(
                    f"time() - (aliyun_vpn_diagnose_finish_timestamp_seconds{{{GATEWAYS}}} > 0)",
                    CONNECTION_LEGEND,
                    instant=True,
                ),
            )
            .unit("s")
            .color_mode(BigValueColorMode.NONE)
        )
        .with_panel(
            single_stat(
                "Diagnosis running",
                "Whether the latest diagnosis is still running.",
                query(
                    f"aliyun_vpn_diagnose_running{{{GATEWAYS}}}", "{{vpn_gateway_id}}", instant=True
                ),
            )
            .color_mode(BigValueColorMode.VALUE)
            .mappings(RUNNING_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Config consistent",
                "VcoConfigConsistency: does the connection's configuration match its peer's? "
                "Unknown (no value) while the peer's configuration cannot be obtained.",
                query(
                    f"aliyun_vpn_config_consistent{{{GATEWAYS}}}", CONNECTION_LEGEND, instant=True
                ),
            ).mappings(YES_NO_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Peer configuration obtained",
                "VcoConfigConsistency could read the peer's IPsec configuration (vcoLackConf "
                "false); when not, consistency is unknown (AliyunVpnPeerConfigUnavailable).",
                query(
                    f"aliyun_vpn_config_peer_available{{{GATEWAYS}}}",
                    CONNECTION_LEGEND,
                    instant=True,
                ),
            ).mappings(YES_NO_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Settings that differ",
                "VcoConfigConsistency: IPsec settings that differ from the peer's, when the "
                "payload lets them be counted.",
                query(
                    f"aliyun_vpn_config_diff_entries{{{GATEWAYS}}}", CONNECTION_LEGEND, instant=True
                ),
            )
            .thresholds(thresholds((None, GREEN), (1, RED)))
            .color_mode(BigValueColorMode.VALUE)
        )
        .with_panel(
            single_stat(
                "Route conflicts",
                "RouteEntryConflict: conflicting routes, only when the payload carries a "
                "countable list (its shape is undocumented: the item's level is what alerts).",
                query(
                    f"aliyun_vpn_route_conflicts{{{GATEWAYS}}}", "{{vpn_gateway_id}}", instant=True
                ),
            )
            .thresholds(thresholds((None, GREEN), (1, RED)))
            .color_mode(BigValueColorMode.VALUE)
        )
        .with_row(dashboard.Row("Connections and tunnels"))
        .with_panel(connections_table("Connections", width=24, height=5))
        .with_panel(tunnels_table())
    )
    for panel in connection_timelines():
        board = board.with_panel(panel)
    return (
        board.with_row(dashboard.Row("Connectivity probes"))
        .with_panel(
            dashed(
                ts(
                    "Round-trip time",
                    "Round-trip time of each connection's probes, as of each diagnosis.",
                    "s",
                    query(f"aliyun_vpn_probe_rtt_seconds{{{GATEWAYS}}}", PROBE_LEGEND),
                ),
                (None, GREEN),
                (RTT_WARNING, ORANGE),
            )
        )
        .with_panel(
            dashed(
                ts(
                    "Packet loss",
                    "Share of each connection's probe packets lost, as of each diagnosis.",
                    "percentunit",
                    query(f"aliyun_vpn_probe_packet_loss_ratio{{{GATEWAYS}}}", PROBE_LEGEND),
                ),
                (None, GREEN),
                (LOSS_WARNING, ORANGE),
            )
        )
        .with_panel(
            statetimeline.Panel()
            .title("Probe reachable")
            .description("Whether each probe got a reply.")
            .datasource(DATASOURCE)
            .with_target(query(f"aliyun_vpn_probe_reachable{{{GATEWAYS}}}", PROBE_LEGEND))
            .mappings(YES_NO_MAPPINGS)
            .show_value(VisibilityMode.NEVER)
            .span(24)
            .height(6)
        )
        .with_row(dashboard.Row("Quotas"))
        .with_panel(
            dashed(
                ts(
                    "Quota utilisation",
                    "used / quantity of each quota item over time.",
                    "percentunit",
                    query(
                        f"aliyun_vpn_quota_used{{{GATEWAYS}}}\n"
                        f"/ (aliyun_vpn_quota_limit{{{GATEWAYS}}} > 0)",
                        QUOTA_LEGEND,
                    ),
                ).max(1),
                (None, GREEN),
                (QUOTA_WARNING, ORANGE),
                (QUOTA_CRITICAL, RED),
            )
        )
        .with_panel(
            ts(
                "Quota used and limit",
                "used and quantity of each quota item.",
                "short",
                query(f"aliyun_vpn_quota_used{{{GATEWAYS}}}", f"used {QUOTA_LEGEND}", "A"),
                query(f"aliyun_vpn_quota_limit{{{GATEWAYS}}}", f"limit {QUOTA_LEGEND}", "B"),
            )
        )
        .with_row(dashboard.Row("Diagnosis and polls"))
        .with_panel(
            ts(
                "Diagnosis age",
                "Time since each connection's latest diagnosis finished, and the age limit of "
                "the gateway's target (aliyun_vpn_diagnose_max_age_seconds): past it, item "
                "alerts stop and AliyunVpnDiagnosisStale fires instead.",
                "s",
                query(
                    f"time() - (aliyun_vpn_diagnose_finish_timestamp_seconds{{{GATEWAYS}}} > 0)",
                    CONNECTION_LEGEND,
                    "A",
                ),
                query(
                    f"0 * aliyun_vpn_poll_success{{{GATEWAYS}}}\n"
                    f"+ on (target) group_left () aliyun_vpn_diagnose_max_age_seconds{{{JOB}}}",
                    "limit {{vpn_gateway_id}}",
                    "B",
                ),
            ).override_by_regexp("^limit .*", [fixed_color(RED)])
        )
        .with_panel(
            ts(
                "Diagnosis run time",
                "FinishTime - BeginTime of the diagnosis whose items are shown.",
                "s",
                query(
                    f"aliyun_vpn_diagnose_finish_timestamp_seconds{{{GATEWAYS}}}\n"
                    f"- aliyun_vpn_diagnose_begin_timestamp_seconds{{{GATEWAYS}}}",
                    CONNECTION_LEGEND,
                ),
            )
        )
        .with_panel(
            ts(
                "Diagnosis progress",
                "Items finished and expected in the latest diagnosis.",
                "short",
                query(
                    f"aliyun_vpn_diagnose_items_finished{{{GATEWAYS}}}",
                    f"finished {CONNECTION_LEGEND}",
                    "A",
                ),
                query(
                    f"aliyun_vpn_diagnose_items_expected{{{GATEWAYS}}}",
                    f"expected {CONNECTION_LEGEND}",
                    "B",
                ),
            )
        )
        .with_panel(
            ts(
                "Time since last successful poll",
                "Values older than the exporter's stale_after are dropped.",
                "s",
                query(
                    f"time() - aliyun_vpn_poll_last_success_timestamp_seconds{{{GATEWAYS}}}",
                    "{{vpn_gateway_id}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Poll duration",
                "How long the last poll of the gateway took, retries included.",
                "s",
                query(f"aliyun_vpn_poll_duration_seconds{{{GATEWAYS}}}", "{{vpn_gateway_id}}"),
            )
        )
    )


def exporter_health() -> dashboard.Dashboard:
    failures = "aliyun_vpn_api_request_failures_total"
    requests = "aliyun_vpn_api_requests_total"
    return (
        base(
            "aliyun-vpn-exporter",
            "Aliyun VPN / Exporter health",
            "The exporter's own work: polls, API calls, failures by code, throttling, latency.",
        )
        .with_row(dashboard.Row("Exporter"))
        .with_panel(
            single_stat(
                "Targets up",
                "Prometheus' scrape of each exporter instance.",
                query(f"up{{{JOB}}}", "{{instance}}", instant=True),
                width=8,
            ).mappings(UP_MAPPINGS)
        )
        .with_panel(
            table_of(
                "Build",
                "aliyun_vpn_build_info of each instance.",
                query(
                    f"aliyun_vpn_build_info{{{JOB}}}",
                    "{{instance}} {{version}} {{python_version}}",
                    instant=True,
                    table_format=True,
                ),
                width=8,
                height=4,
            ).with_transformation(
                organize(excludeByName={"Time": True, "Value": True, "__name__": True})
            )
        )
        .with_panel(
            table_of(
                "Targets",
                "Each target's credentials profile and region, its configured and effective "
                "poll interval (the longest time between a gateway's poll launches over the "
                "last cycle, longer when the API budget cannot poll every gateway in time), "
                "and the age after which a diagnosis counts as stale.",
                query(
                    f"aliyun_vpn_poll_interval_seconds{{{JOB}}}",
                    "{{target}}",
                    "A",
                    instant=True,
                    table_format=True,
                ),
                query(
                    f"aliyun_vpn_poll_effective_interval_seconds{{{JOB}}}",
                    "{{target}}",
                    "B",
                    instant=True,
                    table_format=True,
                ),
                query(
                    f"aliyun_vpn_target_info{{{JOB}}}",
                    "{{target}} {{profile}} {{region_id}}",
                    "C",
                    instant=True,
                    table_format=True,
                ),
                query(
                    f"aliyun_vpn_diagnose_max_age_seconds{{{JOB}}}",
                    "{{target}}",
                    "D",
                    instant=True,
                    table_format=True,
                ),
                width=8,
                height=4,
            )
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(
                organize(
                    excludeByName={"Time": True, "__name__": True, "job": True, "Value #C": True},
                    renameByName={
                        "Value #A": "poll interval",
                        "Value #B": "effective",
                        "Value #D": "diagnosis max age",
                    },
                    indexByName=column_order("target", "profile", "region_id"),
                )
            )
            .unit("s")
        )
        .with_panel(
            single_stat(
                "Credentials",
                "Whether each credentials profile resolved, and the cloud accepted it, the "
                "last time it was needed (AliyunVpnCredentialsFailing).",
                query(f"aliyun_vpn_credentials_success{{{JOB}}}", "{{profile}}", instant=True),
                width=8,
            ).mappings(SUCCESS_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Last config reload",
                "Whether the last reload (SIGHUP or POST /-/reload) was applied; when it was "
                "refused the previous configuration keeps running (AliyunVpnConfigReloadFailed).",
                query(
                    f"aliyun_vpn_config_last_reload_successful{{{JOB}}}",
                    "{{instance}}",
                    instant=True,
                ),
                width=8,
            ).mappings(SUCCESS_MAPPINGS)
        )
        .with_panel(
            single_stat(
                "Configuration age",
                "Time since the running configuration was loaded, at start or by a reload.",
                query(
                    f"time() - aliyun_vpn_config_last_reload_success_timestamp_seconds{{{JOB}}}",
                    "{{instance}}",
                    instant=True,
                ),
                width=8,
            )
            .unit("s")
            .color_mode(BigValueColorMode.NONE)
        )
        .with_panel(
            dashed(
                ts(
                    "Event loop lag",
                    "How late the exporter's event loop wakes a probe that asks to run on "
                    "time: one asyncio loop serves scrapes, polls and the status page, so a "
                    "long stall delays all three.",
                    "s",
                    *(
                        query(
                            f"histogram_quantile({quantile}, sum by (instance, le) ("
                            f"{rate('aliyun_vpn_event_loop_lag_seconds_bucket', JOB)}))",
                            f"p{round(quantile * 100)} {{{{instance}}}}",
                            ref_id,
                        )
                        for quantile, ref_id in ((0.5, "A"), (0.99, "B"))
                    ),
                ),
                (None, GREEN),
                (0.05, ORANGE),
            )
        )
        .with_row(dashboard.Row("Process"))
        .with_panel(
            ts(
                "Memory",
                "Resident and virtual memory of each exporter process (README: sizing).",
                "bytes",
                query(f"process_resident_memory_bytes{{{JOB}}}", "resident {{instance}}", "A"),
                query(f"process_virtual_memory_bytes{{{JOB}}}", "virtual {{instance}}", "B"),
            ).span(8)
        )
        .with_panel(
            ts(
                "CPU",
                "CPU time per second of each exporter process (1 = one core busy).",
                "percentunit",
                query(
                    f"rate(process_cpu_seconds_total{{{JOB}}}[$__rate_interval])", "{{instance}}"
                ),
            ).span(8)
        )
        .with_panel(
            ts(
                "File descriptors",
                "Open file descriptors (connections, sockets, files) and the process limit.",
                "short",
                query(f"process_open_fds{{{JOB}}}", "open {{instance}}", "A"),
                query(f"process_max_fds{{{JOB}}}", "limit {{instance}}", "B"),
            ).span(8)
        )
        .with_panel(
            single_stat(
                "Uptime",
                "Time since each exporter process started.",
                query(
                    f"time() - process_start_time_seconds{{{JOB}}}", "{{instance}}", instant=True
                ),
                width=24,
                height=3,
            )
            .unit("s")
            .color_mode(BigValueColorMode.NONE)
        )
        .with_row(dashboard.Row("Targets and listings"))
        .with_panel(
            ts(
                "Gateways per target",
                "Gateways each target polls, listed and discovered (this shard's share); "
                "AliyunVpnTargetNoGateways fires at 0.",
                "short",
                query(f"aliyun_vpn_target_gateways{{{JOB}}}", "{{target}}"),
            ).span(8)
        )
        .with_panel(
            timeline(
                "Listings",
                "Whether each target's last DescribeVpnGateways and DescribeVpnConnections "
                "refresh succeeded (AliyunVpnListingFailing).",
                POLL_MAPPINGS,
                query(f"aliyun_vpn_listing_success{{{JOB}}}", "{{target}} {{action}}"),
                width=8,
                height=8,
            )
        )
        .with_panel(
            ts(
                "Time since last listing",
                "Age of each target's last successful refresh by action.",
                "s",
                query(
                    f"time() - aliyun_vpn_listing_last_success_timestamp_seconds{{{JOB}}}",
                    "{{target}} {{action}}",
                ),
            ).span(8)
        )
        .with_panel(
            ts(
                "Host clock offset from the API",
                "Host clock minus the API's Date header, last measured (positive: the host is "
                "ahead). Requests signed more than 15 minutes off are refused.",
                "s",
                query(f"aliyun_vpn_clock_offset_seconds{{{JOB}}}", "{{instance}}"),
            )
            .min(None)
            .span(8)
        )
        .with_row(dashboard.Row("Polls"))
        .with_panel(
            statetimeline.Panel()
            .title("Poll outcome")
            .description("Last poll of each gateway: ok, or failing (the exporter's log says why).")
            .datasource(DATASOURCE)
            .with_target(query(f"aliyun_vpn_poll_success{{{GATEWAYS}}}", "{{vpn_gateway_id}}"))
            .mappings(POLL_MAPPINGS)
            .show_value(VisibilityMode.NEVER)
            .span(12)
            .height(8)
        )
        .with_panel(
            ts(
                "Poll duration",
                "How long each gateway's last poll took, retries included.",
                "s",
                query(f"aliyun_vpn_poll_duration_seconds{{{GATEWAYS}}}", "{{vpn_gateway_id}}"),
            )
        )
        .with_panel(
            ts(
                "Time since the last poll launch",
                "Per target: how long ago its scheduler last launched a poll. It grows past "
                "the poll pace only when the scheduler stalls (AliyunVpnSchedulerStalled).",
                "s",
                query(
                    f"time() - aliyun_vpn_poll_last_launch_timestamp_seconds{{{JOB}}}",
                    "{{target}}",
                ),
            )
        )
        .with_row(dashboard.Row("Alibaba Cloud API"))
        .with_panel(
            ts(
                "API requests",
                "HTTP requests per second by action, retries included (the quota counts them).",
                "reqps",
                query(f"sum by (action) ({rate(requests, JOB)})", "{{action}}"),
            )
        )
        .with_panel(
            ts(
                "API failures by code",
                "Failed requests per second by action and the cloud's error Code "
                "(or Timeout, NetworkError, InvalidResponse, other). Leaves out "
                f"{NO_DIAGNOSIS_YET}, the normal answer for a gateway never diagnosed "
                "(see No diagnosis yet).",
                "reqps",
                query(
                    f"sum by (action, code) ({rate(failures, REAL_FAILURES)})",
                    "{{action}} {{code}}",
                ),
            )
        )
        .with_panel(
            ts(
                "No diagnosis yet",
                f"{NO_DIAGNOSIS_YET} answers per second: not a failure, the gateway has "
                "never been diagnosed. Its diagnosis panels stay empty until one runs.",
                "reqps",
                query(
                    f"sum by (action, code) ({rate(failures, NO_DIAGNOSIS_ANSWERS)})",
                    "{{action}} {{code}}",
                ),
            )
        )
        .with_panel(
            ts(
                "Throttled requests",
                "Requests the API throttled (Throttling*), per second; the exporter backs off.",
                "reqps",
                query(
                    f"sum by (action, code) ({rate(failures, THROTTLED)})", "{{action}} {{code}}"
                ),
            )
        )
        .with_panel(
            dashed(
                ts(
                    "Throttled share of requests",
                    "Throttled / all requests by action; AliyunVpnApiThrottling fires above "
                    "10 % over 15 minutes.",
                    "percentunit",
                    query(
                        f"sum by (action) ({rate(failures, THROTTLED)})\n"
                        f"/ sum by (action) ({rate(requests, JOB)})",
                        "{{action}}",
                    ),
                ),
                (None, GREEN),
                (0.10, ORANGE),
            )
        )
        .with_panel(
            ts(
                "API latency",
                "Quantiles of single API request durations by action, from the histogram.",
                "s",
                *(
                    query(
                        f"histogram_quantile({quantile}, sum by (action, le) "
                        f"({rate('aliyun_vpn_api_request_duration_seconds_bucket', JOB)}))",
                        f"p{round(quantile * 100)} {{{{action}}}}",
                        ref_id,
                    )
                    for quantile, ref_id in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
                ),
            )
        )
        .with_panel(
            table_of(
                "API failures in the time range",
                "Failed requests by action and code over the dashboard's time range "
                f"({NO_DIAGNOSIS_YET} left out).",
                query(
                    "sort_desc(sum by (action, code) ("
                    f"increase({failures}{{{REAL_FAILURES}}}[$__range])))",
                    "{{action}} {{code}}",
                    instant=True,
                    table_format=True,
                ),
                height=8,
            )
            .with_transformation(
                organize(excludeByName={"Time": True}, renameByName={"Value": "failures"})
            )
            .decimals(0)
        )
    )


DASHBOARDS = {
    "aliyun-vpn-fleet.json": fleet_overview,
    "aliyun-vpn-gateway.json": gateway_detail,
    "aliyun-vpn-exporter.json": exporter_health,
}

GATEWAY_ALERTS = f'ALERTS{{alertstate="firing", {GATEWAYS}}}'
ALERT_ANNOTATIONS = {
    "aliyun-vpn-fleet": GATEWAY_ALERTS,
    "aliyun-vpn-gateway": GATEWAY_ALERTS,
    "aliyun-vpn-exporter": f'ALERTS{{alertstate="firing", {JOB}}}',
}
"""Firing alerts drawn on every time series panel (gateway alerts filtered by the region and
gateway variables; `=~".*"` also matches alerts without the label)."""


def alerts_annotation(expr: str) -> dict[str, Any]:
    """A Prometheus annotation query (the SDK has no builder for titleFormat and the rest:
    Grafana stores them beside the generic keys)."""
    return {
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "enable": True,
        "expr": expr,
        "iconColor": "red",
        "name": "Firing alerts",
        "step": "60s",
        "tagKeys": "severity",
        "titleFormat": "{{alertname}}",
        "textFormat": "{{vpn_gateway_id}} {{vpn_connection_id}} {{item}} {{target}}",
        "useValueForTime": False,
    }


# Options the SDK writes on every variable but only interval variables have.
_INTERVAL_ONLY = ("auto", "auto_count", "auto_min")


def _tidy(board: dict[str, Any]) -> dict[str, Any]:
    """Number the panels, add the alert annotations, and drop what the 11.6 dashboard
    schema does not have."""
    board["annotations"] = {"list": [alerts_annotation(ALERT_ANNOTATIONS[board["uid"]])]}
    next_id = 1
    for panel in board.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for inner in panel.get("panels", []):
            inner["id"] = next_id
            next_id += 1
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in _INTERVAL_ONLY:
                variable.pop(key, None)
    return board


def render(board: dashboard.Dashboard) -> str:
    data = json.loads(JSONEncoder().encode(board.build()))
    return json.dumps(_tidy(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_all() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {name: render(factory()) for name, factory in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Grafana dashboards from code.")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, text in build_all().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date, run python grafana/generate.py:", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
