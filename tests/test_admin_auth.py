"""Authentication of the admin API and the start-up checks that keep it safe: no request
without valid credentials gets past the gate, reaches the cloud or leaks a secret."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.admin_harness import (
    CONNECTION,
    PASSWORD,
    REGION,
    ROUTE,
    TOKEN,
    TOKEN_NAME,
    USER,
    AdminHarness,
    basic_auth,
    bearer_auth,
    running_admin,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminHarness]:
    async with running_admin(tmp_path_factory.mktemp("auth")) as harness:
        yield harness


@pytest.fixture
def admin(shared: AdminHarness) -> AdminHarness:
    shared.simulator.journal.clear()
    return shared


def unauthenticated_failures(admin: AdminHarness, operation: str = "create_route") -> float:
    return admin.metric(
        "aliyun_vpn_admin_request_failures_total",
        {"operation": operation, "reason": "unauthenticated"},
    )


async def test_a_request_without_credentials_is_401_and_reaches_no_cloud(
    admin: AdminHarness,
) -> None:
    response = await admin.create(headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(":unauthenticated")
    assert admin.cloud_calls() == []


async def test_401_names_both_schemes_in_www_authenticate(admin: AdminHarness) -> None:
    response = await admin.create(headers={"Authorization": ""})
    challenge = response.headers["www-authenticate"]
    assert 'Basic realm="aliyun-vpn-exporter admin"' in challenge
    assert 'Bearer realm="aliyun-vpn-exporter admin"' in challenge


async def test_a_wrong_password_is_401_and_reaches_no_cloud(admin: AdminHarness) -> None:
    response = await admin.create(headers=basic_auth(USER, "wrong password"))
    assert response.status_code == 401
    assert admin.cloud_calls() == []


async def test_an_unknown_user_is_401_and_reaches_no_cloud(admin: AdminHarness) -> None:
    response = await admin.create(headers=basic_auth("mallory", PASSWORD))
    assert response.status_code == 401
    assert admin.cloud_calls() == []


async def test_a_wrong_bearer_token_is_401_and_reaches_no_cloud(admin: AdminHarness) -> None:
    response = await admin.create(headers=bearer_auth("x" * len(TOKEN)))
    assert response.status_code == 401
    assert admin.cloud_calls() == []


async def test_an_invalid_body_without_credentials_is_401_not_422(admin: AdminHarness) -> None:
    # Authentication comes first: an anonymous caller learns nothing about validation.
    response = await admin.http.post(
        f"/api/v1/vpn-connections/{CONNECTION}/routes",
        content=b"{not json",
        headers={"Authorization": "", "Content-Type": "application/json"},
    )
    assert response.status_code == 401


async def test_listing_routes_needs_credentials_too(admin: AdminHarness) -> None:
    response = await admin.http.get(
        f"/api/v1/vpn-connections/{CONNECTION}/routes",
        params={"region_id": REGION},
        headers={"Authorization": ""},
    )
    assert response.status_code == 401
    assert admin.cloud_calls() == []


async def test_the_openapi_document_needs_credentials_too(admin: AdminHarness) -> None:
    response = await admin.http.get("/api/v1/openapi.json", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_a_bearer_token_authenticates_and_is_audited_by_its_name(
    admin: AdminHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="exporter.admin.audit"):
        response = await admin.create(
            {**ROUTE, "route_dest": "192.168.77.0/24"}, headers=bearer_auth()
        )
    assert response.status_code == 202, response.text
    (line,) = [r for r in caplog.records if r.name == "exporter.admin.audit"]
    assert (line.fields["user"], line.fields["auth"]) == (TOKEN_NAME, "bearer")  # type: ignore[attr-defined]


async def test_failed_authentication_is_counted(admin: AdminHarness) -> None:
    before = unauthenticated_failures(admin)
    await admin.create(headers=basic_auth(USER, "wrong"))
    assert unauthenticated_failures(admin) == before + 1


async def test_failed_authentication_is_logged_and_audited_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A harness of its own: failures from an address are logged once a minute at most.
    async with running_admin(tmp_path) as admin:
        with caplog.at_level(logging.INFO):
            await admin.create(headers=basic_auth(USER, "hunter2-guess"))
            await admin.create(headers=bearer_auth("guessed-token-" + "g" * 30))
    text = caplog.text + "".join(str(getattr(r, "fields", "")) for r in caplog.records)
    assert "authentication failed" in text
    assert "hunter2-guess" not in text
    assert "guessed-token" not in text
    audit = [r for r in caplog.records if r.name == "exporter.admin.audit"]
    assert [r.fields["outcome"] for r in audit] == ["unauthenticated"] * 2  # type: ignore[attr-defined]
    assert audit[0].fields["user"] == USER  # type: ignore[attr-defined]
