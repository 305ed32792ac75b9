"""The metric names of the contract (DESIGN.md, "Metric contract"), for tests that check
rules and dashboards use nothing else: a misspelt name in PromQL is not an error, only an
empty result."""

from __future__ import annotations

import re

GAUGES = frozenset(
    {
        "aliyun_vpn_diagnose_item_status",
        "aliyun_vpn_quota_used",
        "aliyun_vpn_quota_limit",
        "aliyun_vpn_probe_rtt_seconds",
        "aliyun_vpn_probe_packet_loss_ratio",
        "aliyun_vpn_probe_reachable",
        "aliyun_vpn_config_consistent",
        "aliyun_vpn_config_peer_available",
        "aliyun_vpn_config_diff_entries",
        "aliyun_vpn_route_conflicts",
        "aliyun_vpn_diagnose_begin_timestamp_seconds",
        "aliyun_vpn_diagnose_finish_timestamp_seconds",
        "aliyun_vpn_diagnose_items_finished",
        "aliyun_vpn_diagnose_items_expected",
        "aliyun_vpn_diagnose_available",
        "aliyun_vpn_diagnose_running",
        "aliyun_vpn_gateway_info",
        "aliyun_vpn_poll_success",
        "aliyun_vpn_poll_last_success_timestamp_seconds",
        "aliyun_vpn_poll_duration_seconds",
        "aliyun_vpn_poll_interval_seconds",
        "aliyun_vpn_poll_effective_interval_seconds",
        "aliyun_vpn_build_info",
        # Fleet features: connection status (DescribeVpnConnections), targets, listings.
        "aliyun_vpn_connection_info",
        "aliyun_vpn_connection_state",
        "aliyun_vpn_connection_ipsec_status",
        "aliyun_vpn_connection_bgp_status",
        "aliyun_vpn_connection_health_check_status",
        "aliyun_vpn_tunnel_info",
        "aliyun_vpn_tunnel_state",
        "aliyun_vpn_tunnel_ipsec_status",
        "aliyun_vpn_target_gateways",
        "aliyun_vpn_listing_success",
        "aliyun_vpn_listing_last_success_timestamp_seconds",
        "aliyun_vpn_credentials_success",
        "aliyun_vpn_clock_offset_seconds",
        # Issue 11: latest-known semantics, a truthful pace, diagnosis ages.
        "aliyun_vpn_target_info",
        "aliyun_vpn_gateway_found",
        "aliyun_vpn_poll_last_launch_timestamp_seconds",
        "aliyun_vpn_diagnose_schedule_interval_seconds",
        "aliyun_vpn_diagnose_max_age_seconds",
        "aliyun_vpn_config_last_reload_successful",
        "aliyun_vpn_config_last_reload_success_timestamp_seconds",
    }
)
COUNTERS = frozenset(
    {
        "aliyun_vpn_diagnoses_started_total",
        "aliyun_vpn_diagnoses_finished_total",
        "aliyun_vpn_diagnoses_timed_out_total",
        "aliyun_vpn_diagnoses_failed_total",
        "aliyun_vpn_api_requests_total",
        "aliyun_vpn_api_request_failures_total",
        "aliyun_vpn_description_parse_errors_total",
        "aliyun_vpn_description_shape_drift_total",
        "aliyun_vpn_admin_requests_total",
        "aliyun_vpn_admin_request_failures_total",
    }
)
HISTOGRAMS = frozenset(
    {"aliyun_vpn_api_request_duration_seconds", "aliyun_vpn_event_loop_lag_seconds"}
)

SERIES = (
    GAUGES
    | COUNTERS
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)
"""Every series name a query may select."""

PER_GATEWAY = frozenset(
    name
    for name in GAUGES
    if name
    not in {
        "aliyun_vpn_build_info",
        "aliyun_vpn_poll_interval_seconds",
        "aliyun_vpn_poll_effective_interval_seconds",
        "aliyun_vpn_target_gateways",
        "aliyun_vpn_listing_success",
        "aliyun_vpn_listing_last_success_timestamp_seconds",
        "aliyun_vpn_credentials_success",
        "aliyun_vpn_clock_offset_seconds",
        "aliyun_vpn_config_last_reload_successful",
        "aliyun_vpn_config_last_reload_success_timestamp_seconds",
        "aliyun_vpn_target_info",
        "aliyun_vpn_poll_last_launch_timestamp_seconds",
        "aliyun_vpn_diagnose_schedule_interval_seconds",
        "aliyun_vpn_diagnose_max_age_seconds",
    }
)
"""Series that carry target, region_id and vpn_gateway_id."""

# A name not preceded by a letter, digit, underscore or colon (recording rules have colons).
_NAME = re.compile(r"(?<![\w:])aliyun_vpn_[a-z_]+(?![\w:])")


def names_in(promql: str) -> set[str]:
    """The `aliyun_vpn_` series names a PromQL expression selects."""
    return set(_NAME.findall(promql))
