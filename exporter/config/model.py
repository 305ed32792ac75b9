"""The configuration models: strict pydantic classes, one per section, and the
cross-references between them (profiles named by targets, unique names)."""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.config.values import (
    AccountId,
    ApiAction,
    Cidr,
    ConfigFile,
    Duration,
    Endpoint,
    GatewayStatus,
    Loc,
    OidcProviderArn,
    PositiveDuration,
    ProfileName,
    ProxyUrl,
    RamRoleName,
    Rate,
    RateLimit,
    RegionId,
    ResourceGroupId,
    RoleArn,
    RoleSessionName,
    Secret,
    StsEndpoint,
    TagKey,
    TargetName,
    VpcId,
    VpnConnectionId,
    VpnGatewayId,
    invalid,
    raise_problems,
)
from exporter.model.catalogue import KNOWN_ACTIONS, KNOWN_REGIONS, PUBLISHED_LIMITS
from exporter.model.gateway import tag_label_name

# --- models -----------------------------------------------------------------------------


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, and
    validation errors never carry the input (it may be a secret)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class _Profile(StrictModel):
    """What every credentials profile has besides its source."""

    account_id: AccountId | None = None
    """The Alibaba Cloud account the profile's calls count against. The API throttles per
    account and region, so profiles of one account share one rate budget. None: the
    account in `role_arn` when the profile has one, else the profile counts as an account
    of its own."""


class DefaultProfile(_Profile):
    """The official `alibabacloud-credentials` chain: environment variables, OIDC/RRSA,
    the aliyun CLI profile, `~/.alibabacloud/credentials.ini`, the ECS RAM role (unless
    `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`) and `ALIBABA_CLOUD_CREDENTIALS_URI`."""

    source: Literal["default"] = "default"


class AccessKeyProfile(_Profile):
    """A fixed AccessKey pair, with an STS token when the pair is temporary."""

    source: Literal["access_key"] = "access_key"
    access_key_id: Secret
    access_key_secret: Secret
    security_token: Secret | None = None


class RamRoleArnProfile(_Profile):
    """Credentials of a RAM role assumed with STS AssumeRole, refreshed before they expire.

    `base_profile` names the profile whose credentials call AssumeRole; without it the
    official default chain does.
    """

    source: Literal["ram_role_arn"] = "ram_role_arn"
    role_arn: RoleArn
    external_id: Secret | None = None
    role_session_name: RoleSessionName = "aliyun-vpn-exporter"
    session_duration: Annotated[Duration, Field(ge=900, le=43200)] = 3600.0
    base_profile: ProfileName | None = None
    sts_endpoint: StsEndpoint | None = None


class OidcProfile(_Profile):
    """A RAM role assumed with an OIDC token (STS AssumeRoleWithOIDC): RRSA on ACK.

    Each setting left out is read from the variable RRSA injects into the pod:
    `ALIBABA_CLOUD_ROLE_ARN`, `ALIBABA_CLOUD_OIDC_PROVIDER_ARN`,
    `ALIBABA_CLOUD_OIDC_TOKEN_FILE`. The token file is re-read at every refresh.
    """

    source: Literal["oidc"] = "oidc"
    role_arn: RoleArn | None = None
    oidc_provider_arn: OidcProviderArn | None = None
    oidc_token_file: Path | None = None
    role_session_name: RoleSessionName = "aliyun-vpn-exporter"
    session_duration: Annotated[Duration, Field(ge=900, le=43200)] = 3600.0
    sts_endpoint: StsEndpoint | None = None


class EcsRamRoleProfile(_Profile):
    """The RAM role of the ECS instance the exporter runs on, from the metadata service
    (100.100.100.200), refreshed when asked (no background thread)."""

    source: Literal["ecs_ram_role"] = "ecs_ram_role"
    role_name: RamRoleName | None = None
    """None: the role the metadata service names."""
    disable_imds_v1: bool = False
    """True: only the token-protected (IMDSv2) metadata requests."""


def _check_credentials_uri(value: SecretStr) -> SecretStr:
    # The URI may carry a token in its query: the messages describe, never quote.
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("credentials_uri", "not an http:// or https:// URL")
    return value


class CredentialsUriProfile(_Profile):
    """Credentials served by a local HTTP endpoint (the `ALIBABA_CLOUD_CREDENTIALS_URI`
    protocol: JSON with `AccessKeyId`, `AccessKeySecret`, `SecurityToken`, `Expiration`)."""

    source: Literal["credentials_uri"] = "credentials_uri"
    uri: Annotated[SecretStr, AfterValidator(_check_credentials_uri)]


CredentialsProfile = Annotated[
    DefaultProfile
    | AccessKeyProfile
    | RamRoleArnProfile
    | OidcProfile
    | EcsRamRoleProfile
    | CredentialsUriProfile,
    Field(discriminator="source"),
]
"""A named credentials profile; `source` says which kind."""


class PollConfig(StrictModel):
    """How often gateways are polled, and whether old data is ever dropped."""

    interval: PositiveDuration = 300.0
    stale_after: PositiveDuration | None = None
    """None (the default): a gateway's latest known data stays exported however long its
    polls fail, while it is configured or discovered. A duration: data older than that is
    dropped (opt-in, for those who prefer vanishing series)."""
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.05
    """Fraction of the interval by which a run may start late, so targets drift apart."""


class ApiConfig(StrictModel):
    """How the VPC API is called: timeouts, retries, endpoint, transport and budgets."""

    timeout: PositiveDuration = 10.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    endpoint: Endpoint | None = None
    """None: the public regional endpoint (`vpc.{region_id}.aliyuncs.com`)."""
    proxy: ProxyUrl | None = None
    ca_file: ConfigFile | None = None
    rate_limits: dict[ApiAction, RateLimit] = {}
    """The exporter's own budget per action, used as given; other actions get
    `budget_fraction` of their published limit."""
    budget_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8
    max_response_bytes: Annotated[ByteSize, Field(gt=0)] = ByteSize(8 * 1024 * 1024)
    extra_regions: tuple[RegionId, ...] = ()
    """Regions to accept besides `KNOWN_REGIONS`: one opened after this release."""

    @field_validator("rate_limits")
    @classmethod
    def _known_actions(cls, limits: dict[str, Rate]) -> dict[str, Rate]:
        problems: list[tuple[Loc, str]] = []
        for action in limits:
            if action not in KNOWN_ACTIONS:
                problems.append(((action,), _unknown("action", action, KNOWN_ACTIONS)))
        raise_problems(problems)
        return limits

    def warnings(self) -> list[tuple[str, str]]:
        """`(path, message)` for settings that work but will likely hurt: a budget above
        the action's published limit (the API will answer `Throttling`)."""
        found = []
        for action, rate in self.rate_limits.items():
            published = PUBLISHED_LIMITS.get(action)
            per_minute = rate.calls * 60 / rate.period
            if published is not None and per_minute > published:
                found.append(
                    (
                        f"api.rate_limits.{action}",
                        f"{rate} is above the published limit of {published}/min for the "
                        "account and region: expect Throttling answers",
                    )
                )
        return found


class DiscoverConfig(StrictModel):
    """Which gateways of the target's account and region DescribeVpnGateways finds."""

    tags: Annotated[dict[Annotated[str, Field(min_length=1)], str], Field(max_length=20)] = {}
    vpc_ids: tuple[VpcId, ...] = ()
    resource_group_id: ResourceGroupId | None = None
    statuses: tuple[GatewayStatus, ...] = ()
    interval: PositiveDuration = 900.0


class Target(StrictModel):
    """Gateways of one account (credentials profile) in one region, listed or discovered.

    `name` is the `target` label. Left out, the `Config` gives it `<profile>/<region_id>`,
    with `#2`, `#3`… when several targets would share that name.
    """

    name: TargetName = ""
    region_id: RegionId
    credentials: ProfileName = "default"
    gateways: tuple[VpnGatewayId, ...] = ()
    interval: PositiveDuration | None = None
    """None: `poll.interval`."""
    discover: DiscoverConfig | None = None

    @field_validator("gateways")
    @classmethod
    def _listed_once(cls, gateways: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        problems: list[tuple[Loc, str]] = []
        for index, gateway in enumerate(gateways):
            if gateway in seen:
                problems.append(((index,), "listed twice"))
            seen.add(gateway)
        raise_problems(problems)
        return gateways

    @model_validator(mode="after")
    def _has_gateways(self) -> Target:
        if not self.gateways and self.discover is None:
            raise invalid("target_empty", "a target needs gateways, a discover section, or both")
        return self


class IpsecExtendInfo(StrictModel):
    """The two private IPs a diagnosis probes between (DiagnoseVpnGateway `IPsecExtendInfo`);
    the VcoPrivateConnectivity item needs them."""

    private_source_ip: ipaddress.IPv4Address
    """On the VPC side (`PrivateSourceIp`)."""
    private_destination_ip: ipaddress.IPv4Address
    """On the on-premises side (`PrivateDestinationIp`)."""


class DiagnoseConfig(StrictModel):
    """Scheduled diagnoses (DiagnoseVpnGateway) of every connection; off by default.

    Each connection of every polled gateway is diagnosed once per `interval` (the starts
    spread over it), and the diagnosis is read by its DiagnoseId every `result_interval`
    until it has finished all its items or `timeout` has passed.
    """

    enabled: bool = False
    interval: PositiveDuration = 3600.0
    timeout: PositiveDuration = 300.0
    result_interval: PositiveDuration = 5.0
    manual_max_age: PositiveDuration = 86400.0
    """Without scheduled diagnoses: the age after which a gateway's latest (manually
    started) diagnosis counts as stale (`aliyun_vpn_diagnose_max_age_seconds`)."""
    connections: dict[VpnConnectionId, IpsecExtendInfo] = {}
    """`IPsecExtendInfo` per connection; connections not listed are diagnosed without it."""

    @model_validator(mode="after")
    def _reads_fit_the_timeout(self) -> DiagnoseConfig:
        if self.result_interval >= self.timeout:
            raise invalid("diagnose_timeout", "result_interval must be shorter than timeout")
        if self.timeout >= self.interval:
            raise invalid("diagnose_timeout", "timeout must be shorter than interval")
        return self


class StateConfig(StrictModel):
    """The state file: the latest-known data saved periodically and at shutdown, and
    restored at start, so a restart serves what it knew before its first cycle."""

    path: Path | None = None
    """None (the default): no state file. The deploy files set one (systemd:
    /var/lib/aliyun-vpn-exporter/state.json; Kubernetes: a path on a volume)."""
    interval: PositiveDuration = 300.0
    """How often the state is saved (and once more at shutdown)."""
    max_size: Annotated[ByteSize, Field(gt=0)] = ByteSize(256 * 1024 * 1024)
    """A larger state is not saved, a larger file not read (10,000 gateways take some
    tens of MB)."""


class GatewayInfoConfig(StrictModel):
    """What `aliyun_vpn_gateway_info` carries besides name, VPC, spec and status."""

    tags: tuple[TagKey, ...] = ()
    """Tag keys exported as `tag_<key>` labels (an allow-list: tags are free-form, and
    every label value is a series)."""

    @field_validator("tags")
    @classmethod
    def _distinct_labels(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for index, tag in enumerate(tags):
            label = tag_label_name(tag)
            if label in seen:
                problems.append(
                    ((index,), f"becomes the label {label}, as tags[{seen[label]}] does")
                )
            else:
                seen[label] = index
        raise_problems(problems)
        return tags


class AdminConfig(StrictModel):
    """The route-add admin API; off by default.

    Empty allow-lists restrict nothing by themselves; the admin API's own rules
    (no `0.0.0.0/0`, nothing touching `100.64.0.0/10`) always apply.
    """

    enabled: bool = False
    allowed_connections: tuple[VpnConnectionId, ...] = ()
    allowed_destinations: tuple[Cidr, ...] = ()


def _check_grafana_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise invalid("grafana_url", "not a Grafana base URL (http(s)://host[:port][/path])")
    return url.rstrip("/")


class WebSettings(StrictModel):
    """What the status page at `/` shows besides the gateways."""

    grafana_url: Annotated[str, AfterValidator(_check_grafana_url)] | None = None
    """Grafana's base URL (`https://grafana.example.com`, or with a sub-path): the page
    then links to the shipped dashboards, each gateway to its detail dashboard."""


def _implied_credentials() -> dict[str, CredentialsProfile]:
    return {"default": DefaultProfile()}


class Config(StrictModel):
    """The whole configuration. Without a `credentials` section a `default` profile using
    the official chain is implied; at least one target is needed unless the exporter only
    serves the admin API."""

    credentials: dict[ProfileName, CredentialsProfile] = Field(default_factory=_implied_credentials)
    poll: PollConfig = PollConfig()
    api: ApiConfig = ApiConfig()
    targets: tuple[Target, ...] = ()
    diagnose: DiagnoseConfig = DiagnoseConfig()
    state: StateConfig = StateConfig()
    gateway_info: GatewayInfoConfig = GatewayInfoConfig()
    admin: AdminConfig = AdminConfig()
    web: WebSettings = WebSettings()

    @field_validator("credentials")
    @classmethod
    def _check_base_profiles(
        cls, profiles: dict[str, CredentialsProfile]
    ) -> dict[str, CredentialsProfile]:
        problems: list[tuple[Loc, str]] = []
        for name, profile in profiles.items():
            if isinstance(profile, RamRoleArnProfile) and profile.base_profile is not None:
                problem = _base_profile_problem(profiles, name, profile.base_profile)
                if problem:
                    problems.append(((name, profile.source, "base_profile"), problem))
        raise_problems(problems)
        return profiles

    @field_validator("targets")
    @classmethod
    def _check_and_name_targets(
        cls, targets: tuple[Target, ...], info: ValidationInfo
    ) -> tuple[Target, ...]:
        problems: list[tuple[Loc, str]] = []
        api = info.data.get("api")  # absent when that section is invalid
        if api is not None:
            regions = KNOWN_REGIONS | set(api.extra_regions)
            problems += [
                (
                    (index, "region_id"),
                    _unknown("region", target.region_id, regions)
                    + " (a region newer than this exporter: add it to api.extra_regions)",
                )
                for index, target in enumerate(targets)
                if target.region_id not in regions
            ]
        profiles = info.data.get("credentials")  # absent when that section is invalid
        if profiles is not None:
            defined = ", ".join(sorted(profiles)) or "none"
            problems += [
                (
                    (index, "credentials"),
                    f"no credentials profile named {target.credentials!r} (defined: {defined})",
                )
                for index, target in enumerate(targets)
                if target.credentials not in profiles
            ]
        named: dict[str, int] = {}
        for index, target in enumerate(targets):
            if target.name in named:
                problems.append(
                    ((index, "name"), f"also the name of targets[{named[target.name]}]")
                )
            elif target.name:
                named[target.name] = index
        listed: dict[str, int] = {}
        for index, target in enumerate(targets):
            for position, gateway in enumerate(target.gateways):
                first = listed.setdefault(gateway, index)
                if first != index:
                    problems.append(
                        (
                            (index, "gateways", position),
                            f"{gateway} is also listed by targets[{first}]",
                        )
                    )
        raise_problems(problems)
        return tuple(
            _with_default_name(index, target, named) for index, target in enumerate(targets)
        )

    @model_validator(mode="after")
    def _needs_targets(self) -> Config:
        if not self.targets and not self.admin.enabled:
            raise_problems(
                [
                    (
                        ("targets",),
                        "at least one target is needed (unless only the admin API is enabled)",
                    )
                ]
            )
        return self

    def warnings(self) -> list[tuple[str, str]]:
        """`(path, message)` for settings that work but will likely hurt; `--check-config`
        prints them and the exporter logs them at start."""
        return self.api.warnings()

    def interval_for(self, target: Target) -> float:
        """The target's configured poll interval in seconds (its own, else `poll.interval`)."""
        return target.interval if target.interval is not None else self.poll.interval

    @property
    def regions(self) -> frozenset[str]:
        """Every region some target covers."""
        return frozenset(target.region_id for target in self.targets)

    def account_of(self, profile: str) -> str:
        """The account whose rate budgets the profile's calls take (see
        `_Profile.account_id`): its `account_id`, the account of its `role_arn`, or
        `profile:<name>`."""
        settings = self.credentials[profile]
        if settings.account_id:
            return settings.account_id
        role_arn = getattr(settings, "role_arn", None)
        if role_arn:
            return str(role_arn).split(":")[3]
        return f"profile:{profile}"


def _unknown(kind: str, name: str, known: frozenset[str] | set[str]) -> str:
    """`unknown action 'X' (did you mean 'Y'?)`."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"unknown {kind} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _base_profile_problem(
    profiles: Mapping[str, CredentialsProfile], name: str, base: str
) -> str | None:
    """What is wrong with the chain of `base_profile`s starting at profile `name`, if anything."""
    seen = [name]
    while base not in seen:
        profile = profiles.get(base)
        if profile is None:
            return f"no credentials profile named {base!r}"
        if not isinstance(profile, RamRoleArnProfile) or profile.base_profile is None:
            return None
        seen.append(base)
        base = profile.base_profile
    return "profiles must not assume roles in a loop: " + " -> ".join([*seen, base])


def _with_default_name(index: int, target: Target, taken: dict[str, int]) -> Target:
    """`target`, named `<profile>/<region_id>` (`#2`, `#3`... if taken) unless it has a
    name; `taken` maps the names given so far to their targets' indexes."""
    if target.name:
        return target
    base = name = f"{target.credentials}/{target.region_id}"
    suffix = 1
    while name in taken:
        suffix += 1
        name = f"{base}#{suffix}"
    taken[name] = index
    return target.model_copy(update={"name": name})
