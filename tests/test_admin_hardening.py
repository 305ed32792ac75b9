"""The admin API never acts on a bad or half-sent request (issue 12): over real sockets to
the real admin listener, against the simulator, whose journal says whether the cloud was
called. Each test names the defect it guards.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator.faults import Fault
from exporter.web.listener import Limits
from tests.admin_harness import (
    CONNECTION,
    FAST,
    LOCKED_CONNECTION,
    PASSWORD,
    ROUTE,
    SECOND_CONNECTION,
    USER,
    running_admin,
)
from tests.process_harness import BOUND

CREATE = "CreateVcoRouteEntry"
SHORT = Limits(read_timeout=0.5)
"""The listener's deadline for a request to arrive whole, short for the stalled clients."""
ROUTES_PATH = f"/api/v1/vpn-connections/{CONNECTION}/routes"


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(r.fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "exporter.admin.audit"
    ]


def credentials() -> bytes:
    return base64.b64encode(f"{USER}:{PASSWORD}".encode())


async def raw_request(port: int, head: bytes, body: bytes, *, stall: bool) -> bytes:
    """Send `head` and `body`, then hang up (or stall until the server hangs up); what the
    server answered, if anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        await writer.drain()
        if not stall:
            writer.write_eof()
        async with asyncio.timeout(BOUND):
            return await reader.read()
    finally:
        writer.close()


def post_head(extra: bytes, path: str = ROUTES_PATH) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + b"Authorization: Basic "
        + credentials()
        + b"\r\n"
        + extra
        + b"\r\n"
    )


async def until_audited(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(BOUND):
        while len(audit_lines(caplog)) < count:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # and no second line
    return audit_lines(caplog)


VALID = json.dumps(ROUTE).encode()

HALF_SENT: dict[str, Callable[[], tuple[bytes, bytes]]] = {
    # The whole JSON document, but fewer bytes than announced.
    "short content-length": lambda: (
        post_head(f"Content-Length: {len(VALID) + 40}\r\n".encode()),
        VALID,
    ),
    # Chunked, the whole document in one chunk, and no final (empty) chunk.
    "no final chunk": lambda: (
        post_head(b"Transfer-Encoding: chunked\r\n"),
        f"{len(VALID):x}\r\n".encode() + VALID + b"\r\n",
    ),
}


@pytest.mark.parametrize("stall", [False, True], ids=["disconnect", "stall"])
@pytest.mark.parametrize("shape", HALF_SENT)
async def test_defect_1_a_half_sent_body_is_dropped_with_no_cloud_call_and_one_audit_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, shape: str, stall: bool
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.admin.audit")
    async with running_admin(tmp_path, limits=SHORT) as admin:
        head, body = HALF_SENT[shape]()
        answer = await raw_request(admin.server.port, head, body, stall=stall)
        (line,) = await until_audited(caplog, 1)
        assert admin.creates() == []
        assert admin.cloud_calls() == []
        assert not answer.startswith(b"HTTP/1.1 2")
        assert line["outcome"] == "incomplete_request"
        assert line["operation"] == "create_route"
        assert line["user"] == USER
        # The same request sent whole is created: the drop was about the missing bytes.
        whole = await admin.http.post(
            ROUTES_PATH, content=VALID, headers={"Content-Type": "application/json"}
        )
        assert whole.status_code == 202
        assert len(admin.creates()) == 1


async def test_defect_7_a_body_over_the_cap_is_audited_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.admin.audit")
    async with running_admin(tmp_path) as admin:
        answer = await admin.http.post(
            ROUTES_PATH,
            content=b"{" + b" " * 20_000 + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413
        (line,) = await until_audited(caplog, 1)
        assert (line["operation"], line["outcome"], line["status"]) == (
            "create_route",
            "payload_too_large",
            413,
        )
        assert admin.cloud_calls() == []


@pytest.mark.parametrize("authenticated", [True, False])
async def test_defect_7_a_path_ending_in_a_newline_is_refused_and_audited_as_a_create(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, authenticated: bool
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.admin.audit")
    async with running_admin(tmp_path) as admin:
        headers = {} if authenticated else {"Authorization": "Basic " + "eDp5"}
        answer = await admin.http.post(ROUTES_PATH + "%0A", json=ROUTE, headers=headers)
        assert answer.status_code == (404 if authenticated else 401)
        (line,) = await until_audited(caplog, 1)
        assert line["operation"] == "create_route"
        assert line["outcome"] == ("not_found" if authenticated else "unauthenticated")
        assert admin.cloud_calls() == []
        requests = admin.metric("aliyun_vpn_admin_requests_total", {"operation": "create_route"})
        assert requests == 1


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1200 + b"]" * 1200,
        b'{"region_id": "cn-hangzhou", "description": "\xff\xfe caf\xe9"}',
        json.dumps(ROUTE).encode("utf-16-le"),
        json.dumps(ROUTE).encode("utf-32"),
        json.dumps(ROUTE).encode("utf-8-sig"),
    ],
    ids=["nested 1200 levels", "not UTF-8", "UTF-16", "UTF-32", "UTF-8 with a BOM"],
)
async def test_defect_5_an_unreadable_body_is_400_malformed(tmp_path: Path, body: bytes) -> None:
    async with running_admin(tmp_path) as admin:
        answer = await admin.http.post(
            ROUTES_PATH, content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:aliyun-vpn-exporter:problem:malformed-request"
        assert admin.cloud_calls() == []
        assert admin.creates() == []


@pytest.mark.parametrize("weight", ["false", "true", "100.0", "1e2", "0.0", '"100"', "1E2"])
async def test_defect_3_only_the_json_integers_0_and_100_are_weights(
    tmp_path: Path, weight: str
) -> None:
    async with running_admin(tmp_path) as admin:
        text = json.dumps({**ROUTE, "weight": 7}).replace("7", weight)
        answer = await admin.http.post(
            ROUTES_PATH, content=text, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422
        assert [p["name"] for p in answer.json()["invalid_params"]] == ["weight"]
        assert admin.creates() == []


@pytest.mark.parametrize(
    "next_hop", [SECOND_CONNECTION, LOCKED_CONNECTION], ids=["same gw", "other gw"]
)
async def test_defect_8_a_next_hop_on_another_connection_is_422_before_any_cloud_call(
    tmp_path: Path, next_hop: str
) -> None:
    async with running_admin(tmp_path) as admin:
        answer = await admin.create({**ROUTE, "next_hop": next_hop})
        assert answer.status_code == 422
        assert [p["name"] for p in answer.json()["invalid_params"]] == ["next_hop"]
        assert admin.cloud_calls() == []


async def test_defect_8_a_tunnel_of_the_connection_is_a_next_hop_and_another_s_is_not(
    tmp_path: Path,
) -> None:
    async with running_admin(tmp_path) as admin:
        fleet = admin.simulator.state.fleet
        own = fleet.connection(CONNECTION).tunnel(2)[0]
        other = fleet.connection(SECOND_CONNECTION).tunnel(1)[0]
        refused = await admin.create({**ROUTE, "next_hop": other})
        assert refused.status_code == 422
        assert admin.creates() == []
        created = await admin.create({**ROUTE, "next_hop": own})
        assert created.status_code == 202
        assert admin.routes_of(CONNECTION) == [(ROUTE["route_dest"], own, 100)]


async def test_defect_8_the_allow_list_applies_to_the_next_hop(tmp_path: Path) -> None:
    async with running_admin(tmp_path, allowed_connections=(CONNECTION,)) as admin:
        answer = await admin.create({**ROUTE, "next_hop": SECOND_CONNECTION})
        assert answer.status_code == 403
        assert admin.cloud_calls() == []


async def test_defect_9_a_failing_create_is_tried_a_handful_of_times_only(tmp_path: Path) -> None:
    async with running_admin(tmp_path) as admin:
        admin.simulator.faults.add(Fault.error("InternalError", action=CREATE))
        answer = await admin.create()
        assert answer.status_code == 502
        assert 1 < len(admin.creates()) <= FAST.max_create_attempts


async def test_defect_9_the_deadline_includes_the_create_attempts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.admin.audit")
    settings = dataclasses.replace(FAST, deadline=1.0)
    async with running_admin(tmp_path, settings=settings) as admin:
        # Each attempt outlasts the deadline (but not the client's own 5 s timeout).
        admin.simulator.faults.add(Fault.latency(3.0, action=CREATE))
        answer = await admin.create()
        assert answer.status_code == 504
        assert answer.json()["type"] == "urn:aliyun-vpn-exporter:problem:upstream-timeout"
        (line,) = await until_audited(caplog, 1)
        assert line["create_calls"] == 1
