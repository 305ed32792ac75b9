"""What a route request must be before any cloud call: the request body's model and the
rules behind it.

The rules are stricter than what CreateVcoRouteEntry would refuse by itself: its page says
`0.0.0.0/0` cannot be added, but only *warns* that a route touching `100.64.0.0/10` breaks
the connection (the console stops showing its state, or IPsec negotiation fails). A route
that can cut a production link must not get through by accident, so every rule here is
checked before the cloud is asked.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
"""RFC 6598 space the transit router uses itself: no route may equal, contain or lie
inside it (the CreateVcoRouteEntry page)."""

UNROUTABLE_SPACE = (
    (ipaddress.IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (ipaddress.IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8)"),
    (ipaddress.IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16)"),
    (ipaddress.IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (ipaddress.IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4)"),
)
"""Space no IPsec peer can be reached in; a route to it is a mistake."""

CONNECTION_ID_PATTERN = r"^vco-[a-z0-9]{1,64}$"
"""An IPsec connection ID (`vco-` and lowercase letters or digits), as the config's."""
NEXT_HOP_PATTERN = r"^(vco|tun)-[a-z0-9]{1,64}$"
"""A next hop: the connection itself (`vco-...`) or one of its tunnels (`tun-...`)."""
NEXT_HOP_RULE = "must be the connection itself or one of its tunnels"
"""The CreateVcoRouteEntry page's example routes to the connection itself; a next hop on
another connection (even another gateway's) would send the traffic elsewhere."""
REGION_ID_PATTERN = r"^[a-z]{2,}(?:-[a-z0-9]+){1,5}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9\-_.:~+/=]{1,64}$"
"""An `Idempotency-Key`: it becomes the ClientToken, which must be ASCII (and, as other
Alibaba Cloud ClientTokens, at most 64 characters). A UUID fits."""
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
CIDR_PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"
"""The shape of an IPv4 CIDR, for the OpenAPI document; the validator decides."""
MAX_DESCRIPTION = 100
"""ASSUMPTION: the API page gives no limit; 1 to 100 characters is the rule of the other
VPC descriptions, so the cloud cannot refuse what passes here."""
WEIGHTS = (0, 100)


def is_connection_id(next_hop: str) -> bool:
    """Whether a next hop names a connection (rather than a tunnel)."""
    return next_hop.startswith("vco-")


def _weight(value: object) -> int:
    """Only the JSON integers 0 and 100: not `false`, `100.0`, `1e2` or `"100"`, which
    pydantic would take for them even in strict mode (`False == 0` in Python)."""
    if type(value) is not int or value not in WEIGHTS:
        raise _invalid("must be the JSON integer 0 or 100")
    return value


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("route_rule", "{reason}", {"reason": message})


def parse_route_dest(text: str) -> ipaddress.IPv4Network:
    """An IPv4 network written exactly as `a.b.c.d/n` with no host bits set, that is not
    `0.0.0.0/0`, touches no part of `100.64.0.0/10` and is not unroutable space.

    Raises ValueError saying which rule failed.
    """
    if "/" not in text:
        raise ValueError("not a CIDR block: write the prefix length, like 10.0.0.0/24")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError("not an IPv4 CIDR block (like 10.0.0.0/24)") from None
    if isinstance(network, ipaddress.IPv6Network):
        raise ValueError("IPv6 is not supported: CreateVcoRouteEntry documents IPv4 routes only")
    if network.prefixlen == 0:
        raise ValueError("a default route (0.0.0.0/0) cannot be added to a connection")
    if str(network) != text:
        address, _, prefix = text.partition("/")
        if str(network.network_address) != address:
            raise ValueError(f"host bits are set: the network is {network}")
        raise ValueError(f"write the prefix length as {network.prefixlen}, not {prefix}")
    if network.overlaps(SHARED_ADDRESS_SPACE):
        raise ValueError(
            f"{network} overlaps 100.64.0.0/10, which the transit router uses itself "
            "(the connection's IPsec negotiation would fail)"
        )
    for space, name in UNROUTABLE_SPACE:
        if network.overlaps(space):
            raise ValueError(f"{network} overlaps {name}, which no IPsec peer can be")
    return network


def _route_dest(text: str) -> str:
    try:
        return str(parse_route_dest(text))
    except ValueError as error:
        raise _invalid(str(error)) from None


def _description(text: str) -> str:
    if not text.strip():
        raise _invalid("must not be empty (leave it out instead)")
    if len(text) > MAX_DESCRIPTION:
        raise _invalid(f"must be at most {MAX_DESCRIPTION} characters")
    if text.startswith(("http://", "https://")):
        raise _invalid("must not start with http:// or https://")
    for char in text:
        # C*: controls, format characters (such as bidirectional overrides), surrogates,
        # private use and unassigned; Zl/Zp: line and paragraph separators.
        if unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            raise _invalid(f"must not contain control or invisible characters (U+{ord(char):04X})")
    return text


RouteDest = Annotated[
    str,
    AfterValidator(_route_dest),
    Field(
        description="Destination IPv4 CIDR block with no host bits set; not 0.0.0.0/0, "
        "nothing touching 100.64.0.0/10, inside the operator's allowed destinations.",
        json_schema_extra={"pattern": CIDR_PATTERN, "examples": ["192.168.10.0/24"]},
    ),
]
Description = Annotated[
    str,
    AfterValidator(_description),
    Field(
        description=f"1 to {MAX_DESCRIPTION} characters, no control or invisible characters, "
        "not starting with http:// or https://.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_DESCRIPTION},
    ),
]


class RouteRequest(BaseModel):
    """The body of `POST /api/v1/vpn-connections/{vpn_connection_id}/routes`.

    Strict: numbers must be JSON numbers and booleans JSON booleans, and unknown keys are
    refused, so a typo (`"wieght"`) fails instead of being silently dropped.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    region_id: Annotated[
        str,
        Field(
            pattern=REGION_ID_PATTERN,
            max_length=64,
            description="Region of the connection; one of the exporter's configured regions.",
            examples=["cn-hangzhou"],
        ),
    ]
    route_dest: RouteDest
    next_hop: Annotated[
        str,
        Field(
            pattern=NEXT_HOP_PATTERN,
            description="Next hop: the connection itself (`vco-...`, in the path) or one of "
            "its tunnels (`tun-...`).",
            examples=["vco-p0w2jpkhi2eeop6q6"],
        ),
    ]
    weight: Annotated[
        int,
        PlainValidator(_weight, json_schema_input_type=int),
        Field(
            description="100: high priority (active); 0: low (standby).",
            json_schema_extra={"enum": list(WEIGHTS)},
        ),
    ]
    description: Description | None = None
    overlay_mode: Literal["Ipsec"] | None = None
    dry_run: bool = Field(
        default=False, description="Only check: the cloud validates and creates nothing."
    )
