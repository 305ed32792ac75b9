"""Scenarios: the fleet, keys and settings a simulator serves, as strict pydantic models.

A scenario comes from YAML (`load_scenario`), from the built-in demo fleet
(`demo_scenario`, itself the YAML file `demo.yaml` beside this module) or from the
generator (`generated_scenario`), which a scenario can also ask for under `generate:`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from exporter.simulator.faults import Fault
from exporter.simulator.items import ItemSpec

DEMO_ACCESS_KEY_ID = "demo-access-key-id"
DEMO_ACCESS_KEY_SECRET = "demo-access-key-secret"  # public: the demo needs no secret

ConnectionStatus = Literal[
    "ike_sa_not_established",
    "ike_sa_established",
    "ipsec_sa_not_established",
    "ipsec_sa_established",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyPair(_Model):
    """An access key the simulator accepts; with `security_token`, an STS key."""

    access_key_id: str = Field(min_length=1)
    access_key_secret: SecretStr
    security_token: SecretStr | None = None
    account_id: str | None = None
    """Throttling is per account: keys of one account share its budget (default: the key)."""


class TunnelSpec(_Model):
    """One tunnel of a dual-tunnel connection (`TunnelOptionsSpecification.TunnelOptions`)."""

    state: str = "active"
    status: ConnectionStatus = "ipsec_sa_established"


class LearnedRouteSpec(_Model):
    """A BGP route the connection learned, as DescribeVcoRouteEntries lists it."""

    route_dest: str
    source: Literal["CLOUD", "VPN_BGP"] = "VPN_BGP"
    """CLOUD: learned from the transit router; VPN_BGP: from the on-premises side."""
    as_path: str = "65001"
    community: str = ""


class ConnectionSpec(_Model):
    """An IPsec connection of a gateway, as DescribeVpnConnections shows it."""

    id: str = Field(pattern=r"^vco-[a-z0-9]+$")
    name: str
    customer_gateway_ip: str = "203.0.113.1"
    local_ip: str = "10.0.0.10"
    """The VPC-side IP of the private probe (`srcIp`, `PrivateSourceIp`)."""
    remote_ip: str = "192.168.0.10"
    """The on-premises IP of the private probe (`targetIp`, `PrivateDestinationIp`)."""
    local_subnet: str = "10.0.0.0/16"
    remote_subnet: str = "192.168.0.0/16"
    attach_type: Literal["CEN", "VPNGW", "NO_ASSOCIATED"] = "VPNGW"
    transit_router_id: str | None = None
    state: str | None = None
    """`State`; default `attached` when attached to a transit router, else `active`."""
    status: ConnectionStatus = "ipsec_sa_established"
    # ASSUMPTION: the API pages list no values for these two statuses.
    bgp_status: str = "success"
    health_check_status: str = "success"
    tags: dict[str, str] = {}
    tunnels: list[TunnelSpec] = Field(default=[], max_length=2)
    """The two tunnels' own state and status; empty: both in the connection's status."""
    learned_routes: list[LearnedRouteSpec] = []
    """BGP routes (`RouteEntryType` bgp): listed, never created or deleted by a client."""

    @model_validator(mode="after")
    def _transit_router_when_attached(self) -> Self:
        if self.attach_type == "CEN" and not self.transit_router_id:
            raise ValueError(
                "a connection attached to a transit router (CEN) needs transit_router_id"
            )
        return self


class GatewaySpec(_Model):
    """A VPN gateway: what DescribeVpnGateways shows and what its diagnosis finds."""

    id: str = Field(pattern=r"^vpn-[a-z0-9]+$")
    name: str
    region_id: str = Field(min_length=1)
    vpc_id: str = Field(pattern=r"^vpc-[a-z0-9]+$")
    spec: str = "10M"
    status: str = "active"
    business_status: str = "Normal"
    resource_group_id: str = "rg-default"
    internet_ip: str = "198.51.100.1"
    description: str = ""
    tags: dict[str, str] = {}
    create_time: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    has_diagnosis: bool = True
    """False: no diagnosis until a client starts one (`InvalidVpnGatewayId.NotFound`)."""
    connections: list[ConnectionSpec] = []
    """Empty: one connection `vco-<the gateway ID's suffix>`."""
    items: list[ItemSpec] = []
    """Items that differ from a healthy gateway's; the others are normal."""

    @model_validator(mode="after")
    def _items_unique(self) -> Self:
        names = [item.name for item in self.items]
        if len(names) != len(set(names)):
            raise ValueError("an item is listed twice")
        return self


class DiagnosisSettings(_Model):
    """How diagnoses behave.

    A gateway with `has_diagnosis` is re-diagnosed every `rediagnose_every` seconds (a
    simulator convenience that makes values move); a diagnosis started by
    DiagnoseVpnGateway runs for `duration` seconds and from then on is the gateway's latest.
    """

    duration: float = Field(default=10.0, ge=0)
    rediagnose_every: float = Field(default=60.0, gt=0)


class RouteSettings(_Model):
    """How the destination-route actions (`routes.py`) behave.

    ASSUMPTION: the API pages give none of these numbers; they are the simulator's.
    """

    settle_seconds: float = Field(default=5.0, ge=0)
    """How long a connection stays `updating` after a route is created or deleted."""
    connection_quota: int = Field(default=50, ge=1)
    """Routes per connection before `Resource.QuotaFull`."""
    region_quota: int = Field(default=200, ge=1)
    """Routes per account and region before `QuotaExceeded.VpnRouteEntry`."""
    ssl_client_cidrs: list[str] = []
    """SSL-VPN client pools a route must not overlap (`VpnRouteEntry.ConflictSSL`)."""


class GeneratorSpec(_Model):
    """A generated fleet: `gateways` gateways spread over `regions`, reproducible by `seed`."""

    gateways: int = Field(ge=0)
    regions: list[str] = Field(default=["cn-hangzhou"], min_length=1)
    seed: int = 0


class Scenario(_Model):
    """Everything a simulator serves."""

    key_pairs: list[KeyPair] = Field(min_length=1)
    diagnosis: DiagnosisSettings = DiagnosisSettings()
    gateways: list[GatewaySpec] = []
    generate: GeneratorSpec | None = None
    rate_limits: dict[str, int] = {}
    """Calls per 60 s by action, over the published limits (see `throttle.py`)."""
    retry_after_header: bool = True
    """Whether throttled answers carry `x-acs-retry-after` (milliseconds)."""
    faults: list[Fault] = []
    """Faults in force from the start."""
    routes: RouteSettings = RouteSettings()
    """CreateVcoRouteEntry and its neighbours."""

    @model_validator(mode="after")
    def _ids_unique(self) -> Self:
        for what, ids in (
            ("gateway", [g.id for g in self.gateways]),
            ("connection", [c.id for g in self.gateways for c in g.connections]),
            ("access key", [k.access_key_id for k in self.key_pairs]),
        ):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"duplicate {what} IDs: {', '.join(duplicates)}")
        return self

    @model_validator(mode="after")
    def _rate_limits_positive(self) -> Self:
        bad = sorted(action for action, limit in self.rate_limits.items() if limit < 1)
        if bad:
            raise ValueError(f"rate limits must be at least 1 call per minute: {', '.join(bad)}")
        return self


class ScenarioError(ValueError):
    """A scenario file that cannot be read, with every problem and where it is."""


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Validate already-loaded YAML/JSON data; raise ScenarioError naming each bad field."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ScenarioError(f"{source}: " + "; ".join(problems)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML scenario file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse_scenario(data, str(path))


@functools.cache
def demo_scenario() -> Scenario:
    """The fixed demo fleet that dashboards, alerts and tests rely on (`demo.yaml`)."""
    text = resources.files("exporter.simulator").joinpath("demo.yaml").read_text("utf-8")
    return parse_scenario(yaml.safe_load(text), "demo.yaml")
