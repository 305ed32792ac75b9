"""Generated fleets for benchmarks and load tests: any size, every item kind, reproducible.

Each gateway gets a profile (a level class) by a seeded draw; profiles share their item
settings, so a 10,000-gateway fleet costs two small objects per gateway and builds in
milliseconds. Every gateway has all seven items, both probes included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from exporter.simulator.fleet import Connection, Gateway, phase_of
from exporter.simulator.items import (
    ConfigDiff,
    ConsistencyItem,
    ItemSpec,
    Level,
    ProbeItem,
    QuotaItem,
    RouteConflict,
    RouteConflictItem,
    complete_items,
)
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    GeneratorSpec,
    KeyPair,
    Scenario,
)

_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class Profile:
    """A level class of generated gateways."""

    name: str
    weight: int
    items: tuple[ItemSpec, ...]
    has_diagnosis: bool = True


PROFILES = (
    Profile("healthy", 70, complete_items([])),
    Profile(
        "quota-warning",
        5,
        complete_items(
            [QuotaItem(name="VpnRouteQuota", level=Level.WARNING, quantity=100, used=85, drift=2)]
        ),
    ),
    Profile(
        "quota-error",
        4,
        complete_items(
            [QuotaItem(name="VpnIPsecQuota", level=Level.ERROR, quantity=100, used=97, drift=1)]
        ),
    ),
    Profile(
        "unreachable",
        4,
        complete_items(
            [
                ProbeItem(
                    name="VcoUserInternetIpConnectivity",
                    level=Level.ERROR,
                    rtt_ms=-1,
                    loss_rate=100,
                )
            ]
        ),
    ),
    Profile(
        "lossy",
        5,
        complete_items(
            [
                ProbeItem(
                    name="VcoPrivateConnectivity",
                    level=Level.WARNING,
                    rtt_ms=180,
                    rtt_drift_ms=20,
                    loss_rate=8,
                    loss_drift=2,
                )
            ]
        ),
    ),
    Profile(
        "inconsistent",
        4,
        complete_items(
            [
                ConsistencyItem(
                    name="VcoConfigConsistency",
                    level=Level.ERROR,
                    diff=[
                        ConfigDiff(setting="IkeConfig.IkeEncAlg", local="aes", peer="aes256"),
                        ConfigDiff(setting="IpsecConfig.IpsecPfs", local="group2", peer="group14"),
                    ],
                )
            ]
        ),
    ),
    Profile(
        "route-conflict",
        4,
        complete_items(
            [
                RouteConflictItem(
                    name="RouteEntryConflict",
                    level=Level.WARNING,
                    conflicts=[
                        RouteConflict(
                            route_dest="10.10.0.0/16",
                            next_hop="vco-peer",
                            conflicts_with="vtb-system",
                        )
                    ],
                )
            ]
        ),
    ),
    Profile("no-diagnosis", 4, complete_items([]), has_diagnosis=False),
)


def _pick(rng: random.Random, total: int) -> Profile:
    ticket = rng.randrange(total)
    for profile in PROFILES:
        if ticket < profile.weight:
            return profile
        ticket -= profile.weight
    raise AssertionError("weights exhausted")  # pragma: no cover


def expand(spec: GeneratorSpec) -> Iterator[Gateway]:
    """The gateways a generator spec describes, `vpn-gen0000000` onwards."""
    rng = random.Random(spec.seed)
    total = sum(p.weight for p in PROFILES)
    for index in range(spec.gateways):
        profile = _pick(rng, total)
        region_index = index % len(spec.regions)
        region = spec.regions[region_index]
        gateway_id = f"vpn-gen{index:07d}"
        low, high = index & 255, (index >> 8) & 255
        cen = index % 10 == 9
        connection = Connection(
            id=f"vco-gen{index:07d}",
            name=f"gen{index:07d}-ipsec",
            gateway_id=gateway_id,
            region_id=region,
            customer_gateway_ip=f"198.18.{high}.{low}",  # benchmark ranges (RFC 2544)
            local_ip=f"10.{high}.{low}.10",
            remote_ip=f"192.168.{low}.10",
            local_subnet=f"10.{high}.{low}.0/24",
            remote_subnet=f"192.168.{low}.0/24",
            attach_type="CEN" if cen else "VPNGW",
            transit_router_id=f"tr-gen{region_index}" if cen else None,
            status=(
                "ike_sa_not_established"
                if profile.name == "unreachable"
                else "ipsec_sa_established"
            ),
            bgp_status="success",
            health_check_status="failed" if profile.name == "unreachable" else "success",
            create_time_ms=_EPOCH_MS + index * 1000,
            state="attached" if cen else "active",
        )
        yield Gateway(
            id=gateway_id,
            name=f"gen{index:07d}-{profile.name}",
            region_id=region,
            vpc_id=f"vpc-gen{index:07d}",
            spec="10M",
            status="active",
            business_status="Normal",
            resource_group_id="rg-default",
            internet_ip=f"198.19.{high}.{low}",
            description="",
            tags={"env": "generated", "profile": profile.name},
            create_time_ms=_EPOCH_MS + index * 1000,
            has_diagnosis=profile.has_diagnosis,
            connections=[connection],
            items=profile.items,
            phase=phase_of(gateway_id),
        )


def generated_scenario(
    gateways: int,
    regions: Sequence[str] = ("cn-hangzhou",),
    seed: int = 0,
    *,
    key_pairs: Sequence[KeyPair] | None = None,
) -> Scenario:
    """A scenario of `gateways` generated gateways (accepting the demo key pair by default)."""
    return Scenario(
        key_pairs=list(key_pairs)
        if key_pairs is not None
        else [
            KeyPair(
                access_key_id=DEMO_ACCESS_KEY_ID,
                access_key_secret=SecretStr(DEMO_ACCESS_KEY_SECRET),
            )
        ],
        generate=GeneratorSpec(gateways=gateways, regions=list(regions), seed=seed),
    )
