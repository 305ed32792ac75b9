"""What the exporter knows of the VPC API beyond single calls: the actions it may call with
their rate limits, and the regions that exist. The configuration is checked against both
(a misspelt action or region is an error, not a setting silently ignored), and the rate
budgets start from the limits.
"""

from __future__ import annotations

from collections.abc import Mapping

PUBLISHED_LIMITS: Mapping[str, int] = {
    "GetVpnGatewayDiagnoseResult": 120,
    "DescribeVpnConnections": 600,
    "DescribeVpnConnection": 600,
    "DescribeVpnGateway": 600,
    "DescribeVcoRouteEntries": 600,
    "DeleteVcoRouteEntry": 60,
}
"""Calls per 60 s per account and region, as the API reference publishes them."""

ASSUMED_LIMITS: Mapping[str, int] = {
    "DiagnoseVpnGateway": 60,
    "CreateVcoRouteEntry": 60,
    "DescribeVpnGateways": 600,
}
"""ASSUMPTION: these limits are not published anywhere; low guesses, overridable by config."""

KNOWN_ACTIONS: frozenset[str] = frozenset(PUBLISHED_LIMITS) | frozenset(ASSUMED_LIMITS)
"""Every action `api.rate_limits` may name."""

KNOWN_REGIONS: frozenset[str] = frozenset(
    {
        # Chinese mainland and Hong Kong
        "cn-qingdao",
        "cn-beijing",
        "cn-zhangjiakou",
        "cn-huhehaote",
        "cn-wulanchabu",
        "cn-hangzhou",
        "cn-shanghai",
        "cn-nanjing",
        "cn-fuzhou",
        "cn-shenzhen",
        "cn-heyuan",
        "cn-guangzhou",
        "cn-chengdu",
        "cn-wuhan-lr",
        "cn-zhengzhou-jva",
        "cn-hongkong",
        # Asia Pacific, Europe, the Americas, the Middle East
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ap-south-1",
        "us-east-1",
        "us-west-1",
        "na-south-1",
        "eu-west-1",
        "eu-central-1",
        "me-east-1",
        "me-central-1",
        # finance and government clouds
        "cn-hangzhou-finance",
        "cn-shanghai-finance-1",
        "cn-shenzhen-finance-1",
        "cn-beijing-finance-1",
        "cn-north-2-gov-1",
    }
)
"""Public region IDs as of this release (the console's region list). A region opened
later is allowed with the config key `api.extra_regions`."""
