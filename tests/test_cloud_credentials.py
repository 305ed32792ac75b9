"""Credentials providers: access keys from the environment or files, the official default
chain configured from an explicit environment (never the metadata service, no background
thread), assumed roles, and errors that name the profile but never a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from exporter.cloud.credentials import (
    ChainCredentialsProvider,
    StaticCredentialsProvider,
    build_providers,
)
from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential
from exporter.config.loader import load_config
from exporter.config.model import Config

REPO = Path(__file__).resolve().parent.parent
SECRET = "Base-S3cr3t-Value"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """An environment with no credentials in it, no metadata service and no CLI profile,
    and a HOME of its own (so the developer's ~/.aliyun is never read)."""
    return {
        "HOME": str(tmp_path),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
    }


def config_with(profiles: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "credentials": profiles,
            "targets": [
                {"region_id": "cn-hangzhou", "credentials": name, "gateways": [f"vpn-{index}"]}
                for index, name in enumerate(profiles)
            ],
        }
    )


DEFAULT_ONLY = {"default": {"source": "default"}}


def threads() -> set[threading.Thread]:
    return set(threading.enumerate())


# --- the Credential value -----------------------------------------------------------------


def test_credential_repr_and_str_hide_the_secret_and_token() -> None:
    credential = Credential("AKID", SECRET, "token-value")

    for text in (repr(credential), str(credential), f"{credential}"):
        assert "AKID" in text
        assert SECRET not in text
        assert "token-value" not in text


# --- access_key ---------------------------------------------------------------------------


async def test_access_key_profile_gives_its_pair_and_token_from_env_and_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """
            credentials:
              prod:
                source: access_key
                access_key_id: !env PROD_ID
                access_key_secret: !file secret
                security_token: !env PROD_TOKEN
            targets: [{region_id: cn-hangzhou, credentials: prod, gateways: [vpn-a]}]
            """
        )
    )
    config = load_config(path, {"PROD_ID": "AKID", "PROD_TOKEN": "sts-token"})

    provider = build_providers(config, {})["prod"]

    assert isinstance(provider, StaticCredentialsProvider)
    assert provider.profile == "prod"
    assert await provider.get() == Credential("AKID", SECRET, "sts-token")


def test_access_key_only_config_never_imports_the_official_library(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from exporter.config.model import Config
        from exporter.cloud.credentials import build_providers

        config = Config.model_validate({
            "credentials": {"k": {"source": "access_key", "access_key_id": "a",
                                  "access_key_secret": "b"}},
            "targets": [{"region_id": "cn-hangzhou", "credentials": "k", "gateways": ["vpn-a"]}],
        })
        build_providers(config, {})
        assert "alibabacloud_credentials" not in sys.modules, "imported"
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr


# --- default: the official chain ---------------------------------------------------------


async def test_default_chain_takes_keys_from_the_given_environment_without_a_thread(
    environ: dict[str, str],
) -> None:
    environ |= {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "AKID-env",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
    }
    before = threads()

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]
    credential = await provider.get()

    assert credential == Credential("AKID-env", SECRET, "env-token")
    assert isinstance(provider, ChainCredentialsProvider)
    assert provider.sources == ("environment", "credentials_file")
    assert threads() == before


async def test_default_chain_reads_the_environment_it_is_given_not_the_process_one(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKID-process")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "process-secret")

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    with pytest.raises(CredentialsError):
        await provider.get()


async def test_default_chain_reads_the_credentials_file_under_home(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / ".alibabacloud").mkdir()
    (tmp_path / ".alibabacloud" / "credentials.ini").write_text(
        "[default]\ntype = access_key\naccess_key_id = AKID-ini\naccess_key_secret = ini-secret\n"
    )

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    assert await provider.get() == Credential("AKID-ini", "ini-secret")


async def test_default_chain_with_no_source_says_which_profile_and_what_was_tried(
    environ: dict[str, str],
) -> None:
    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    with pytest.raises(CredentialsError) as caught:
        await provider.get()

    message = str(caught.value)
    assert "profile 'default' (source default): no source worked" in message
    assert "tried: credentials_file;" in message
    assert "cli_profile" not in message
    advice = caught.value.advice or ""
    # What to do first, in one short line; the sources' own reasons go to the debug log.
    assert advice.startswith(
        "no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"
    )
    assert len(message) + len(advice) < 300


def test_library_log_lines_go_through_the_exporters_logging_only(
    environ: dict[str, str],
) -> None:
    build_providers(config_with(DEFAULT_ONLY), environ)

    assert logging.getLogger("credentials").handlers == []


def test_cli_profile_is_tried_unless_disabled(environ: dict[str, str]) -> None:
    del environ["ALIBABA_CLOUD_CLI_PROFILE_DISABLED"]

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    assert isinstance(provider, ChainCredentialsProvider)
    assert provider.sources == ("cli_profile", "credentials_file")


def test_oidc_joins_the_chain_after_the_environment_when_its_variables_are_set(
    environ: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("oidc-token")
    environ |= {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "AKID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1:role/pod",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1:oidc-provider/ack",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(tmp_path / "token"),
    }

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    assert isinstance(provider, ChainCredentialsProvider)
    assert provider.sources == ("environment", "oidc", "credentials_file")


def test_ecs_ram_role_is_wired_without_a_background_thread(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alibabacloud_credentials.utils import auth_util

    # As if the process had not disabled the metadata service when the library was imported.
    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "false")
    del environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"]
    before = threads()

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    assert isinstance(provider, ChainCredentialsProvider)
    assert provider.sources == ("credentials_file", "ecs_ram_role")
    assert threads() == before  # the library's own chain would start an APScheduler thread


def test_ecs_ram_role_stays_out_when_the_process_disabled_it_at_import(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alibabacloud_credentials.utils import auth_util

    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
    del environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"]

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    assert isinstance(provider, ChainCredentialsProvider)
    assert "ecs_ram_role" not in provider.sources


async def test_a_source_the_library_refuses_to_build_fails_when_tried_not_at_start(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alibabacloud_credentials import provider as library

    def refuse(**_: Any) -> None:
        raise ValueError("session duration should be in the range of 900s")

    monkeypatch.setattr(library, "OIDCRoleArnCredentialsProvider", refuse)
    environ |= {
        "ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1:role/pod",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1:oidc-provider/ack",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(tmp_path / "token"),
    }

    provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

    with pytest.raises(CredentialsError, match="oidc: session duration should be"):
        await provider.get()


# --- credentials URI on loopback (a real library source, end to end) ---------------------


async def serve_json(body: dict[str, Any]) -> tuple[asyncio.Server, str]:
    """A loopback HTTP server answering every GET with `body`; returns it and its URL."""
    payload = json.dumps(body).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/credentials"


async def test_credentials_uri_source_gives_the_served_sts_credential(
    environ: dict[str, str],
) -> None:
    server, url = await serve_json(
        {
            "Code": "Success",
            "AccessKeyId": "STS.AKID",
            "AccessKeySecret": SECRET,
            "SecurityToken": "sts-token",
            "Expiration": "2999-01-01T00:00:00Z",
        }
    )
    environ["ALIBABA_CLOUD_CREDENTIALS_URI"] = url
    try:
        provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

        assert await provider.get() == Credential("STS.AKID", SECRET, "sts-token")
    finally:
        server.close()
        await server.wait_closed()


async def test_secrets_in_a_failed_answer_are_masked_in_the_error(
    environ: dict[str, str],
) -> None:
    server, url = await serve_json(
        {"Code": "Expired", "AccessKeySecret": SECRET, "SecurityToken": "sts-token-value"}
    )
    environ["ALIBABA_CLOUD_CREDENTIALS_URI"] = url + "?token=uri-query-token"
    try:
        provider = build_providers(config_with(DEFAULT_ONLY), environ)["default"]

        with pytest.raises(CredentialsError) as caught:
            await provider.get()
    finally:
        server.close()
        await server.wait_closed()

    message = str(caught.value)
    assert "credentials_uri:" in message
    for secret in (SECRET, "sts-token-value", "uri-query-token"):
        assert secret not in message


# --- ram_role_arn ----------------------------------------------------------------------


async def refusing_sts() -> tuple[asyncio.Server, str, list[int]]:
    """A loopback 'STS' that hangs up on every connection; counts them."""
    connections: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}", connections


async def test_ram_role_arn_calls_sts_with_its_base_profile_and_fails_without_secrets() -> None:
    server, endpoint, connections = await refusing_sts()
    config = config_with(
        {
            "keys": {"source": "access_key", "access_key_id": "AKID", "access_key_secret": SECRET},
            "prod": {
                "source": "ram_role_arn",
                "role_arn": "acs:ram::123:role/vpn-exporter",
                "external_id": "external-id-value",
                "base_profile": "keys",
                "sts_endpoint": endpoint,
            },
        }
    )
    try:
        provider = build_providers(config, {})["prod"]

        with pytest.raises(CredentialsError) as caught:
            await provider.get()
    finally:
        server.close()
        await server.wait_closed()

    assert connections  # the AssumeRole call went to the configured endpoint
    message = str(caught.value)
    assert message.startswith("credentials: profile 'prod' (source ram_role_arn): ")
    assert SECRET not in message
    assert "external-id-value" not in message


async def test_ram_role_arn_without_base_profile_assumes_the_role_with_the_default_chain(
    environ: dict[str, str],
) -> None:
    config = config_with({"prod": {"source": "ram_role_arn", "role_arn": "acs:ram::1:role/x"}})

    provider = build_providers(config, environ)["prod"]

    with pytest.raises(CredentialsError, match=r"profile 'prod/base' \(source default\)"):
        await provider.get()


def test_one_provider_per_profile_named_after_it(environ: dict[str, str]) -> None:
    config = config_with(
        {
            "default": {"source": "default"},
            "keys": {"source": "access_key", "access_key_id": "a", "access_key_secret": "b"},
            "role": {
                "source": "ram_role_arn",
                "role_arn": "acs:ram::1:role/x",
                "base_profile": "keys",
            },
        }
    )

    providers = build_providers(config, environ)

    assert {name: provider.profile for name, provider in providers.items()} == {
        "default": "default",
        "keys": "keys",
        "role": "role",
    }


# --- the chain itself ----------------------------------------------------------------------


class Source:
    """A chain source that fails `failures` times, then answers; records concurrency."""

    def __init__(self, name: str, *, failures: int = 0, error: str = "not here") -> None:
        self.name = name
        self.failures = failures
        self.error = error
        self.calls = 0
        self.running = 0
        self.most_running = 0

    async def __call__(self) -> Credential:
        self.calls += 1
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(0.01)
            if self.calls <= self.failures:
                raise RuntimeError(self.error)
            return Credential(f"id-{self.name}", "secret")
        finally:
            self.running -= 1


async def test_chain_keeps_the_first_source_that_works() -> None:
    first, second = Source("first", failures=10), Source("second")
    chain = ChainCredentialsProvider("p", "default", [("first", first), ("second", second)])

    assert (await chain.get()).access_key_id == "id-second"
    assert (await chain.get()).access_key_id == "id-second"
    assert (first.calls, second.calls) == (1, 2)


async def test_chain_serialises_concurrent_calls() -> None:
    source = Source("only")
    chain = ChainCredentialsProvider("p", "ram_role_arn", [("only", source)])

    await asyncio.gather(*(chain.get() for _ in range(5)))

    assert source.most_running == 1


async def test_kept_source_failing_later_is_reported_for_the_profile() -> None:
    source = Source("only")
    chain = ChainCredentialsProvider("p", "default", [("only", source)])
    await chain.get()
    source.failures = 99

    with pytest.raises(CredentialsError, match="profile 'p' \\(source default\\): only: not here"):
        await chain.get()


async def test_chain_masks_known_secrets_and_shortens_long_reasons() -> None:
    noisy = Source("noisy", failures=1, error=f"body {SECRET} and {SECRET.lower()!r} " + "x" * 1000)
    chain = ChainCredentialsProvider("p", "default", [("noisy", noisy)], secrets=[SECRET])

    with pytest.raises(CredentialsError) as caught:
        await chain.get()

    message = str(caught.value)
    assert SECRET not in message
    assert "body ****" in message
    assert message.endswith("...")
    assert len(message) < 400
