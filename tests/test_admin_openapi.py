"""The OpenAPI document at `/api/v1/openapi.json`, and schemathesis run against it.

The fuzz run follows DESIGN: the simulator neither throttles nor keeps connections
`updating`, so no documented 502/503 is provoked by load, and every answer must be a
declared status with a conforming body. Afterwards the simulator's journal must hold no
CreateVcoRouteEntry call for an input the admin API must refuse (judged here by rules
written independently of `exporter.admin.validation`).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.admin.problems import PROBLEM_TYPES
from exporter.simulator.journal import RecordedRequest
from exporter.simulator.simulator import Simulator
from tests.admin_harness import (
    PASSWORD,
    USER,
    AdminHarness,
    admin_in_thread,
    basic_auth,
    tunnel_ids,
)
from tests.schemathesis_run import run_schemathesis

DECLARED = {"200", "201", "202", "400", "401", "403", "404", "409", "413", "422", "500", "502"}
DECLARED |= {"503", "504"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminHarness]:
    """The admin API and simulator served from a thread (schemathesis runs in another
    process and calls them synchronously)."""
    with admin_in_thread(tmp_path_factory.mktemp("fuzz")) as harness:
        yield harness


def base_url(harness: AdminHarness) -> str:
    return f"http://127.0.0.1:{harness.server.port}"


def openapi(harness: AdminHarness) -> dict[str, Any]:
    response = httpx.get(f"{base_url(harness)}/api/v1/openapi.json", headers=basic_auth())
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_operation_declares_every_status_it_can_answer(served: AdminHarness) -> None:
    document = openapi(served)
    operations = document["paths"]["/api/v1/vpn-connections/{vpn_connection_id}/routes"]
    assert set(operations["post"]["responses"]) == DECLARED
    assert set(operations["get"]["responses"]) == DECLARED - {"201", "202", "400", "409"}


def test_every_problem_type_an_operation_can_answer_is_declared(served: AdminHarness) -> None:
    document = openapi(served)
    post = document["paths"]["/api/v1/vpn-connections/{vpn_connection_id}/routes"]["post"]
    statuses = {str(kind.status) for kind in PROBLEM_TYPES if kind.slug != "method-not-allowed"}
    assert statuses <= set(post["responses"])


def test_problem_answers_are_declared_as_problem_json(served: AdminHarness) -> None:
    document = openapi(served)
    for operation in document["paths"][
        "/api/v1/vpn-connections/{vpn_connection_id}/routes"
    ].values():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], status


def test_the_document_declares_both_authentication_schemes(served: AdminHarness) -> None:
    document = openapi(served)
    assert document["components"]["securitySchemes"] == {
        "basicAuth": {"type": "http", "scheme": "basic"},
        "bearerAuth": {"type": "http", "scheme": "bearer"},
    }


def must_be_refused(request: RecordedRequest, simulator: Simulator) -> str | None:
    """Why a CreateVcoRouteEntry call should never have been made, if it should not."""
    params = request.params
    text = params.get("RouteDest", "")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return f"RouteDest {text!r} is not a CIDR without host bits"
    if network.version != 4:
        return f"RouteDest {text} is IPv6"
    if network.prefixlen == 0:
        return "a default route"
    if network.overlaps(ipaddress.ip_network("100.64.0.0/10")):
        return f"RouteDest {text} touches 100.64.0.0/10"
    if params.get("Weight") not in ("0", "100"):
        return f"Weight {params.get('Weight')!r}"
    description = params.get("Description")
    if description is not None and (
        not description.strip()
        or len(description) > 100
        or any(unicodedata.category(c)[0] == "C" for c in description)
    ):
        return f"Description {description!r}"
    connection = params.get("VpnConnectionId", "")
    if (
        not connection.startswith("vco-")
        or not connection[4:].isalnum()
        or not connection.islower()
    ):
        return f"VpnConnectionId {connection!r}"
    next_hop = params.get("NextHop", "")
    if next_hop != connection and next_hop not in tunnel_ids(simulator, connection):
        return f"NextHop {next_hop!r} is neither the connection nor one of its tunnels"
    if params.get("RegionId") != "cn-hangzhou":
        return f"region {params.get('RegionId')!r} is not configured"
    return None


def test_schemathesis_finds_no_server_error_nor_schema_violation(
    served: AdminHarness, tmp_path: Path
) -> None:
    before = admin_requests(served)
    run_schemathesis(
        f"{base_url(served)}/api/v1/openapi.json",
        auth=(USER, PASSWORD),
        max_examples=150,
        workdir=tmp_path,
        # Valid per the schema is not always acceptable: 0.0.0.0/0 has the shape of a CIDR.
        extra=("--exclude-checks", "positive_data_acceptance"),
    )
    creates = [r for r in served.simulator.requests if r.action == "CreateVcoRouteEntry"]
    assert creates, "the run never got a route through to the cloud"
    refusable = [
        (reason, r.params) for r in creates if (reason := must_be_refused(r, served.simulator))
    ]
    print(
        f"\nschemathesis: {admin_requests(served) - before:.0f} requests, {len(creates)} "
        f"CreateVcoRouteEntry calls, {len(refusable)} of them for invalid input"
    )
    assert refusable == []


def admin_requests(harness: AdminHarness) -> float:
    """Requests the admin API has answered, every operation."""
    return sum(
        sample.value
        for metric in harness.metrics.registry.collect()
        if metric.name == "aliyun_vpn_admin_requests"
        for sample in metric.samples
        if sample.name == "aliyun_vpn_admin_requests_total"
    )
