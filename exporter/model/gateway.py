"""A gateway's descriptive fields and the rule that turns its tags into label names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """Descriptive fields from DescribeVpnGateways (`aliyun_vpn_gateway_info`)."""

    name: str
    vpc_id: str
    spec: str
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)


_LABEL_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")


def tag_label_name(tag_key: str) -> str:
    """The label of `aliyun_vpn_gateway_info` a tag becomes: `tag_` and the key with every
    character not allowed in a label name as `_` (`app.kubernetes.io/name` →
    `tag_app_kubernetes_io_name`), as kube-state-metrics names Kubernetes labels."""
    return "tag_" + _LABEL_CHARACTER.sub("_", tag_key)


@dataclass(frozen=True, slots=True)
class DiscoveredGateway:
    """One gateway as DescribeVpnGateways describes it (every tag kept)."""

    vpn_gateway_id: str
    name: str
    vpc_id: str
    spec: str
    status: str
    tags: Mapping[str, str]

    def info(self, tag_keys: Sequence[str] = ()) -> GatewayInfo:
        """Its `aliyun_vpn_gateway_info` labels, with only the allow-listed tags."""
        return GatewayInfo(
            name=self.name,
            vpc_id=self.vpc_id,
            spec=self.spec,
            status=self.status,
            tags={key: self.tags[key] for key in tag_keys if key in self.tags},
        )
