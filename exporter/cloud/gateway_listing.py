"""Discovery: the gateways a target covers, and what DescribeVpnGateways says about them.

A target's `discover` section becomes one paginated DescribeVpnGateways listing per VPC ID
(the API filters by one VPC, one status, one resource group and up to 20 tags at a time);
several statuses are filtered here, after listing. Gateways the target lists by ID but
discovery does not return are looked up too, for their `aliyun_vpn_gateway_info`, by
whichever is cheaper: one call per ID or the region's listing (see `exporter.cloud.paging`).

Everything the API returns is read into typed values here; nothing past this module
handles DescribeVpnGateways' JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from exporter.cloud.paging import (
    MAX_PAGE_SIZE,
    Lookup,
    Page,
    all_pages,
    envelope,
    lookup,
    text,
    word,
)
from exporter.config.model import DiscoverConfig
from exporter.model.gateway import DiscoveredGateway

ACTION = "DescribeVpnGateways"


class GatewaySource(Protocol):
    """The part of the VPC client discovery needs."""

    async def describe_vpn_gateways(
        self,
        page_number: int = 1,
        page_size: int = MAX_PAGE_SIZE,
        *,
        vpn_gateway_id: str | None = None,
        vpc_id: str | None = None,
        status: str | None = None,
        business_status: str | None = None,
        resource_group_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...


def parse_gateways(payload: Mapping[str, Any]) -> Page[DiscoveredGateway]:
    """One page of DescribeVpnGateways; gateways without an ID are skipped."""
    total, entries = envelope(ACTION, payload, "VpnGateways", "VpnGateway")
    gateways = []
    for entry in entries:
        gateway_id = text(entry.get("VpnGatewayId"))
        if gateway_id is None:
            continue
        gateways.append(
            DiscoveredGateway(
                vpn_gateway_id=gateway_id,
                name=text(entry.get("Name")) or "",
                vpc_id=text(entry.get("VpcId")) or "",
                spec=word(entry.get("Spec")) or "",
                status=word(entry.get("Status")) or "",
                tags=_tags(entry.get("Tags")),
            )
        )
    return Page(total, gateways)


def _tags(value: object) -> dict[str, str]:
    """`{"Tag": [{"Key": k, "Value": v}, ...]}` (or the bare list) as a mapping."""
    entries = value.get("Tag") if isinstance(value, Mapping) else value
    tags: dict[str, str] = {}
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, Mapping):
                key = text(entry.get("Key"))
                if key is not None:
                    tags[key] = text(entry.get("Value")) or ""
    return tags


async def discover(client: GatewaySource, settings: DiscoverConfig) -> list[DiscoveredGateway]:
    """Every gateway of the client's account and region that `settings` selects.

    Raises the client's `ApiError` when a listing fails: a discovery that could not see
    everything must not be mistaken for gateways that disappeared.
    """
    statuses = set(settings.statuses)
    status = settings.statuses[0] if len(settings.statuses) == 1 else None
    tags = dict(settings.tags) or None
    found: dict[str, DiscoveredGateway] = {}
    for vpc_id in settings.vpc_ids or (None,):

        async def fetch(number: int, vpc_id: str | None = vpc_id) -> Page[DiscoveredGateway]:
            return parse_gateways(
                await client.describe_vpn_gateways(
                    number,
                    MAX_PAGE_SIZE,
                    vpc_id=vpc_id,
                    status=status,
                    resource_group_id=settings.resource_group_id,
                    tags=tags,
                )
            )

        for gateway in await all_pages(fetch):
            if not statuses or gateway.status in statuses:
                found.setdefault(gateway.vpn_gateway_id, gateway)
    return sorted(found.values(), key=lambda gateway: gateway.vpn_gateway_id)


async def describe(client: GatewaySource, gateway_ids: Sequence[str]) -> Lookup[DiscoveredGateway]:
    """DescribeVpnGateways' view of the given gateways (for listed gateways' info);
    a gateway the API does not know is found with an empty list."""

    async def region_page(number: int) -> Page[DiscoveredGateway]:
        return parse_gateways(await client.describe_vpn_gateways(number, MAX_PAGE_SIZE))

    async def each(gateway_id: str) -> list[DiscoveredGateway]:
        page = parse_gateways(await client.describe_vpn_gateways(1, 1, vpn_gateway_id=gateway_id))
        return [gateway for gateway in page.items if gateway.vpn_gateway_id == gateway_id]

    return await lookup(
        gateway_ids,
        region_page=region_page,
        each=each,
        key_of=lambda gateway: gateway.vpn_gateway_id,
    )
