"""Fuzzing the admin API's request bodies with mutated valid bodies (issue 12): type swaps,
truncations, re-encodings, dropped, doubled and unknown keys, lookalike values. Each body
goes over a real socket to the real admin listener; an oracle written independently of
`exporter.admin.validation` says whether it is valid, and the simulator's journal must
show no CreateVcoRouteEntry call for any body that is not. No answer may be a 5xx.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admin_harness import (
    CONNECTION,
    REGION,
    AdminHarness,
    admin_in_thread,
    basic_auth,
    tunnel_ids,
)

EXAMPLES = 400
"""Bodies tried per run (a fixed seed: a failure reproduces)."""
CREATE = "CreateVcoRouteEntry"
FIELDS = ("region_id", "route_dest", "next_hop", "weight", "description", "overlay_mode")
FIELDS += ("dry_run",)
REQUIRED = {"region_id", "route_dest", "next_hop", "weight"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminHarness]:
    with admin_in_thread(tmp_path_factory.mktemp("bodies")) as harness:
        yield harness


# --- the oracle ----------------------------------------------------------------------------


def valid_route_dest(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return (
        isinstance(network, ipaddress.IPv4Network)
        and str(network) == value
        and network.prefixlen > 0
        and not network.overlaps(ipaddress.ip_network("100.64.0.0/10"))
        and not any(
            network.overlaps(ipaddress.ip_network(space))
            for space in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
        )
    )


def valid_description(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 100
        and value.strip() != ""
        and not value.startswith(("http://", "https://"))
        and not any(
            unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
            for c in value
        )
    )


def is_valid(body: bytes, next_hops: set[str]) -> bool:
    """Whether the admin API may act on `body` (posted for `CONNECTION`)."""
    try:
        document = json.loads(body.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(document, dict) or not REQUIRED <= document.keys() <= set(FIELDS):
        return False
    weight = document["weight"]
    return (
        document["region_id"] == REGION
        and valid_route_dest(document["route_dest"])
        and isinstance(document["next_hop"], str)
        and document["next_hop"] in next_hops
        and type(weight) is int
        and weight in (0, 100)
        and (document.get("description") is None or valid_description(document["description"]))
        and document.get("overlay_mode") in (None, "Ipsec")
        and type(document.get("dry_run", False)) is bool
    )


# --- the mutations ---------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
"""Any JSON value: what a field's value is swapped for."""

LOOKALIKES: dict[str, list[Any]] = {
    "region_id": [
        "cn-hangzhou ",
        "CN-HANGZHOU",
        "cn-hangzhou\n",
        "cn\u2010hangzhou",
        "ap-southeast-1",
    ],
    "route_dest": [
        "0.0.0.0/0",
        "100.64.0.0/10",
        "100.0.0.0/8",
        "100.64.1.0/24",
        "10.0.0.1/24",
        "192.168.10.0/024",
        "192.168.10.0",
        "::/0",
        "fd00::/8",
        "192.168.10.0/24\n",
        " 192.168.10.0/24",
        "192.168.010.0/24",
        "127.0.0.0/8",
        "224.0.0.0/4",
        "192.168.10.0/33",
    ],
    "next_hop": ["vco-cen2", "vco-locked", "vco-CEN1", "vco-cen1 ", "tun-cen21", "tun-cen11", ""],
    "weight": [False, True, 100.0, 0.0, 1e2, "100", 50, -100, 1000, None, [100]],
    "description": ["", " ", "a\x00b", "x" * 101, "http://x", "bidi\u202etext", "line\u2028sep"],
    "overlay_mode": ["ipsec", "GRE", "", 1],
    "dry_run": ["true", 1, 0, None],
}


def valid_bodies() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "region_id": st.just(REGION),
            "route_dest": st.integers(1, 250).map(lambda n: f"192.168.{n}.0/24"),
            "next_hop": st.just(CONNECTION),
            "weight": st.sampled_from([0, 100]),
        },
        optional={
            "description": st.text(st.characters(categories=("L", "N")), min_size=1, max_size=20),
            "overlay_mode": st.just("Ipsec"),
            "dry_run": st.booleans(),
        },
    )


@st.composite
def mutated_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with some of its fields swapped, lookalike, dropped, or unknown."""
    body = draw(valid_bodies())
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELDS))
        match draw(st.sampled_from(["swap", "lookalike", "drop", "unknown"])):
            case "swap":
                body[field] = draw(JSON_VALUES)
            case "lookalike":
                body[field] = draw(st.sampled_from(LOOKALIKES[field]))
            case "drop":
                body.pop(field, None)
            case "unknown":
                body[draw(st.sampled_from([f"{field} ", field.upper(), "wieght", "x"]))] = 1
    return body


ENCODINGS = ("utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-7")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A body as bytes: valid, field-mutated, then perhaps truncated or re-encoded."""
    document = draw(valid_bodies() | mutated_fields())
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    match draw(st.sampled_from(["as is", "as is", "truncate", "encode", "bom", "wrap", "dup"])):
        case "truncate":
            return text.encode()[: draw(st.integers(0, max(0, len(text.encode()) - 1)))]
        case "encode":
            return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
        case "bom":
            return codecs.BOM_UTF8 + text.encode()
        case "wrap":
            return json.dumps([document]).encode()
        case "dup":  # a key twice: the second value would win in json.loads
            return (
                text[:-1] + ', "weight": ' + draw(st.sampled_from(["50", "true", "1e2"])) + "}"
            ).encode()
    return text.encode()


def test_mutated_bodies_never_reach_the_cloud_when_invalid(served: AdminHarness) -> None:
    base = f"http://127.0.0.1:{served.server.port}/api/v1/vpn-connections/{CONNECTION}/routes"
    next_hops = {CONNECTION, *tunnel_ids(served.simulator, CONNECTION)}
    tried = {"valid": 0, "invalid": 0}
    invalid_creates: list[tuple[bytes, int]] = []

    with httpx.Client(headers=basic_auth(), timeout=30) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(body=bodies())
        def post(body: bytes) -> None:
            before = sum(1 for r in served.simulator.requests if r.action == CREATE)
            answer = http.post(base, content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code < 500, (body, answer.status_code, answer.text)
            creates = sum(1 for r in served.simulator.requests if r.action == CREATE) - before
            valid = is_valid(body, next_hops)
            tried["valid" if valid else "invalid"] += 1
            if not valid and creates:
                invalid_creates.append((body, creates))
            assert creates == 0 or valid, (body, answer.status_code, answer.text)

        post()
    print(
        f"\nfuzzed bodies: {tried['valid']} valid, {tried['invalid']} invalid; "
        f"CreateVcoRouteEntry calls for invalid bodies: {len(invalid_creates)}"
    )
    assert invalid_creates == []
    assert tried["invalid"] > EXAMPLES // 2 and tried["valid"] > 0
