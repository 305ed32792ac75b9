"""Multi-account credentials through alibabacloud-credentials: `ram_role_arn` and OIDC (RRSA)
against a simulated STS on loopback over verified TLS, the issued keys then signing real
calls to the simulator; ECS RAM role wiring; credentials URI; and a failing profile that
only fails its own targets, saying why once."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cloud.credentials import build_providers
from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.simulator.scenario import demo_scenario
from exporter.simulator.simulator import Simulator
from tests.exporter_rig import DEMO_KEYS, configured, polled_once, running
from tests.sts import Issued, StsServer, TestPki

BASE_ID, BASE_SECRET = "LTAI-base-key-id", "base-key-secret-value"
ROLE = "acs:ram::1234567890123456:role/vpn-exporter"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1234"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.test-oidc-token"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def trusted(pki: TestPki, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestPki]:
    """The library trusts the test CA (as the system's CAs), and no proxy is in the way."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield pki


@pytest.fixture
async def sts(trusted: TestPki) -> AsyncIterator[StsServer]:
    async with StsServer(trusted, callers={BASE_ID: BASE_SECRET}, oidc_token=TOKEN) as server:
        yield server


def accepting_issued_keys(issued: Issued) -> Simulator:
    simulator = Simulator(demo_scenario(), throttling=False)
    simulator.add_key_pair(
        issued.access_key_id, issued.access_key_secret, security_token=issued.security_token
    )
    return simulator


def role_profiles(endpoint: str, **role: Any) -> dict[str, Any]:
    return {
        "base": {
            "source": "access_key",
            "access_key_id": BASE_ID,
            "access_key_secret": BASE_SECRET,
        },
        "prod": {
            "source": "ram_role_arn",
            "role_arn": ROLE,
            "external_id": "external-id-4711",
            "role_session_name": "vpn-exporter-test",
            "session_duration": "2h",
            "base_profile": "base",
            "sts_endpoint": endpoint,
            **role,
        },
    }


# --- ram_role_arn ------------------------------------------------------------------------


async def test_ram_role_arn_assumes_the_role_over_tls_and_signs_with_the_sts_keys(
    sts: StsServer,
) -> None:
    simulator = accepting_issued_keys(sts.issued)
    make = configured(
        [{"region_id": "cn-hangzhou", "credentials": "prod", "gateways": ["vpn-hz1healthy"]}],
        credentials=role_profiles(sts.endpoint),
    )
    async with running(simulator, make) as run:
        await polled_once(run)
        assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 1

    (assume, *_) = sts.requests
    assert assume["Action"] == "AssumeRole"
    assert (assume["RoleArn"], assume["RoleSessionName"], assume["DurationSeconds"]) == (
        ROLE,
        "vpn-exporter-test",
        "7200",
    )
    assert assume["ExternalId"] == "external-id-4711"
    assert assume["AccessKeyId"] == BASE_ID, "the base profile's key called AssumeRole"
    calls = [r for r in simulator.requests if r.action == "GetVpnGatewayDiagnoseResult"]
    assert calls and {r.access_key_id for r in calls} == {sts.issued.access_key_id}
    assert all(r.status == 200 for r in calls)


async def test_the_sts_certificate_is_verified(
    pki: TestPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with StsServer(pki, callers={BASE_ID: BASE_SECRET}) as untrusted:
        provider = build_providers(
            Config.model_validate(
                {
                    "credentials": role_profiles(untrusted.endpoint),
                    "targets": [
                        {"region_id": "cn-hangzhou", "credentials": "prod", "gateways": ["vpn-a"]}
                    ],
                }
            ),
            {},
        )["prod"]
        with pytest.raises(CredentialsError, match="certificate verify failed"):
            await provider.get()
    assert untrusted.requests == [], "nothing was sent to a server whose certificate failed"


async def test_credentials_about_to_expire_are_assumed_again(sts: StsServer) -> None:
    # The library refreshes 15 minutes before expiry: ten-minute credentials are stale at once.
    sts.issued.lifetime = datetime.timedelta(minutes=10)
    config = Config.model_validate(
        {
            "credentials": role_profiles(sts.endpoint),
            "targets": [{"region_id": "cn-hangzhou", "credentials": "prod", "gateways": ["vpn-a"]}],
        }
    )
    provider = build_providers(config, {})["prod"]

    first = await provider.get()
    second = await provider.get()

    assert (
        first
        == second
        == Credential(
            sts.issued.access_key_id, sts.issued.access_key_secret, sts.issued.security_token
        )
    )
    assert [r["Action"] for r in sts.requests] == ["AssumeRole", "AssumeRole"]


# --- OIDC / RRSA -------------------------------------------------------------------------


async def test_oidc_profile_assumes_the_role_with_the_token_file(
    sts: StsServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    simulator = accepting_issued_keys(sts.issued)
    make = configured(
        [{"region_id": "cn-hangzhou", "credentials": "rrsa", "gateways": ["vpn-hz2quota"]}],
        credentials={
            "rrsa": {
                "source": "oidc",
                "role_arn": ROLE,
                "oidc_provider_arn": PROVIDER,
                "oidc_token_file": str(token_file),
                "role_session_name": "rrsa-session",
                "sts_endpoint": sts.endpoint,
            }
        },
    )
    async with running(simulator, make) as run:
        await polled_once(run)
        assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz2quota") == 1

    (assume, *_) = sts.requests
    assert assume["Action"] == "AssumeRoleWithOIDC"
    assert (assume["RoleArn"], assume["OIDCProviderArn"], assume["OIDCToken"]) == (
        ROLE,
        PROVIDER,
        TOKEN,
    )
    assert assume["RoleSessionName"] == "rrsa-session"
    assert "AccessKeyId" not in assume and "Signature" not in assume


async def test_oidc_profile_reads_what_rrsa_injects_into_the_pod(
    sts: StsServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "rrsa-token"
    token_file.write_text(TOKEN)
    config = Config.model_validate(
        {
            "credentials": {"rrsa": {"source": "oidc", "sts_endpoint": sts.endpoint}},
            "targets": [{"region_id": "cn-hangzhou", "credentials": "rrsa", "gateways": ["vpn-a"]}],
        }
    )
    environ = {
        "ALIBABA_CLOUD_ROLE_ARN": ROLE,
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
    }

    credential = await build_providers(config, environ)["rrsa"].get()

    assert credential.access_key_id == sts.issued.access_key_id
    assert sts.requests[0]["RoleArn"] == ROLE
    assert config.account_of("rrsa") == "profile:rrsa", "no role ARN in the config to tell"


async def test_oidc_profile_without_its_settings_says_which_are_missing() -> None:
    config = Config.model_validate(
        {
            "credentials": {"rrsa": {"source": "oidc", "role_arn": ROLE}},
            "targets": [{"region_id": "cn-hangzhou", "credentials": "rrsa", "gateways": ["vpn-a"]}],
        }
    )
    with pytest.raises(CredentialsError) as caught:
        await build_providers(config, {})["rrsa"].get()
    message = str(caught.value)
    assert "profile 'rrsa' (source oidc)" in message
    assert "oidc_provider_arn (or ALIBABA_CLOUD_OIDC_PROVIDER_ARN)" in message
    assert "oidc_token_file (or ALIBABA_CLOUD_OIDC_TOKEN_FILE)" in message


async def test_a_wrong_oidc_token_fails_the_profile_with_the_sts_answer(
    sts: StsServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expired-token")
    config = Config.model_validate(
        {
            "credentials": {
                "rrsa": {
                    "source": "oidc",
                    "role_arn": ROLE,
                    "oidc_provider_arn": PROVIDER,
                    "oidc_token_file": str(token_file),
                    "sts_endpoint": sts.endpoint,
                }
            },
            "targets": [{"region_id": "cn-hangzhou", "credentials": "rrsa", "gateways": ["vpn-a"]}],
        }
    )
    with pytest.raises(CredentialsError, match=r"AuthenticationFail\.OIDCToken"):
        await build_providers(config, {})["rrsa"].get()


# --- one failing profile -----------------------------------------------------------------


async def test_a_failing_profile_fails_only_its_targets_and_says_why_once(
    trusted: TestPki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.cloud.profiles")
    refusal = (
        403,
        {"Code": "NoPermission", "Message": "You are not authorized to do this action."},
    )
    async with StsServer(trusted, callers={BASE_ID: BASE_SECRET}, refuse=refusal) as refusing:
        make = configured(
            [
                {"name": "good", "region_id": "cn-hangzhou", "gateways": ["vpn-hz1healthy"]},
                {
                    "name": "bad",
                    "region_id": "ap-southeast-1",
                    "credentials": "prod",
                    "gateways": ["vpn-sg2lossy"],
                },
            ],
            credentials={"default": DEMO_KEYS, **role_profiles(refusing.endpoint)},
        )
        async with running(Simulator(demo_scenario(), throttling=False), make) as run:
            await polled_once(run)
            assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-hz1healthy") == 1
            assert run.value("aliyun_vpn_poll_success", vpn_gateway_id="vpn-sg2lossy") == 0
            record = run.exporter.fleet.get(
                next(k for k in run.exporter.fleet.records if k.target == "bad")
            )
            assert record.last_poll is not None and record.last_poll.error is not None
            assert "profile 'prod' (source ram_role_arn)" in record.last_poll.error
            assert "NoPermission" in record.last_poll.error
            await run.exporter.inventory.refresh_connections("bad")  # fails again
            text = await run.scrape()
    assert 'aliyun_vpn_credentials_success{profile="prod"} 0.0' in text
    assert 'aliyun_vpn_credentials_success{profile="default"} 1.0' in text
    failures = [
        r for r in caplog.records if r.getMessage().startswith("credentials profile failed")
    ]
    assert len(failures) == 1, "said once, not per gateway or call"
    fields = failures[0].__dict__["fields"]
    assert fields["profile"] == "prod" and fields["targets"] == "bad"
    assert "NoPermission" in fields["error"]
    assert BASE_SECRET not in caplog.text and "external-id-4711" not in caplog.text


# --- ECS RAM role: the wiring (the metadata service is not on loopback) ------------------


def test_ecs_ram_role_profile_builds_the_librarys_provider_without_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alibabacloud_credentials import provider as library

    built: list[dict[str, Any]] = []

    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            built.append(kwargs)

        async def get_credentials_async(self) -> Any:
            raise AssertionError("nothing may call the metadata service in a test")

    monkeypatch.setattr(library, "EcsRamRoleCredentialsProvider", Recorder)
    before = set(threading.enumerate())
    config = Config.model_validate(
        {
            "credentials": {
                "node": {
                    "source": "ecs_ram_role",
                    "role_name": "vpn-exporter-node",
                    "disable_imds_v1": True,
                }
            },
            "targets": [{"region_id": "cn-hangzhou", "credentials": "node", "gateways": ["vpn-a"]}],
        }
    )

    providers = build_providers(config, {})

    assert providers["node"].profile == "node"
    (kwargs,) = built
    assert kwargs["role_name"] == "vpn-exporter-node"
    assert kwargs["disable_imds_v1"] is True
    assert kwargs["async_update_enabled"] is False, "no background refresh thread"
    assert set(threading.enumerate()) == before


async def test_ecs_ram_role_profile_says_why_when_the_process_disabled_the_metadata_service() -> (
    None
):
    # tests/conftest.py set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true before the library loaded.
    config = Config.model_validate(
        {
            "credentials": {"node": {"source": "ecs_ram_role"}},
            "targets": [{"region_id": "cn-hangzhou", "credentials": "node", "gateways": ["vpn-a"]}],
        }
    )
    with pytest.raises(CredentialsError, match=r"profile 'node' \(source ecs_ram_role\).*disabled"):
        await build_providers(config, {})["node"].get()


# --- credentials URI ---------------------------------------------------------------------


async def test_credentials_uri_profile_takes_the_served_keys() -> None:
    body = json.dumps(
        {
            "Code": "Success",
            "AccessKeyId": "STS.uri-key",
            "AccessKeySecret": "uri-secret",
            "SecurityToken": "uri-token",
            "Expiration": "2999-01-01T00:00:00Z",
        }
    ).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = Config.model_validate(
            {
                "credentials": {
                    "sidecar": {
                        "source": "credentials_uri",
                        "uri": f"http://127.0.0.1:{port}/credentials?token=uri-query-secret",
                    }
                },
                "targets": [
                    {"region_id": "cn-hangzhou", "credentials": "sidecar", "gateways": ["vpn-a"]}
                ],
            }
        )
        credential = await build_providers(config, {})["sidecar"].get()
    finally:
        server.close()
        await server.wait_closed()
    assert credential == Credential("STS.uri-key", "uri-secret", "uri-token")


# --- configuration -----------------------------------------------------------------------


def test_profiles_are_checked_without_quoting_secrets(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        """
credentials:
  rrsa: {source: oidc, oidc_provider_arn: "acs:ram::1:role/not-a-provider"}
  node: {source: ecs_ram_role, role_name: "bad role name"}
  sidecar: {source: credentials_uri, uri: "ftp://host/creds?token=hunter2-secret"}
  keys: {source: access_key, access_key_id: a, access_key_secret: b, account_id: "12ab"}
targets: [{region_id: cn-hangzhou, credentials: rrsa, gateways: [vpn-a]}]
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    errors = dict(caught.value.errors)
    assert "not an OIDC provider ARN" in errors["credentials.rrsa.oidc_provider_arn"]
    assert "not a RAM role name" in errors["credentials.node.role_name"]
    assert "not an http:// or https:// URL" in errors["credentials.sidecar.uri"]
    assert "not an Alibaba Cloud account ID" in errors["credentials.keys.account_id"]
    assert "hunter2-secret" not in str(caught.value)
