"""The command line as a user runs it: a real process, real ports, real signals."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter import __version__
from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.errors import CloudError
from exporter.cloud.keys import Credential
from exporter.cloud.retry import RetryPolicy
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from tests.demo_harness import STARTUP_BOUND, cli_process, free_port

VALID_CONFIG = "targets:\n  - region_id: cn-hangzhou\n    gateways: [vpn-abc]\n"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60
    )


def test_version_names_the_exporter_and_its_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert f"aliyun-vpn-exporter {__version__}" in result.stdout


def test_demo_serves_the_demo_fleet_on_the_given_port_and_stops_on_sigterm() -> None:
    port = free_port()
    with cli_process("--demo", f"--web.listen-address=127.0.0.1:{port}", port=port) as process:
        text = ""
        deadline = time.monotonic() + STARTUP_BOUND
        while 'vpn_gateway_id="vpn-sg2lossy"} 1' not in text and time.monotonic() < deadline:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            time.sleep(0.1)
        assert 'aliyun_vpn_diagnose_item_status{target="default/cn-hangzhou"' in text
        assert 'aliyun_vpn_poll_success{target="default/ap-southeast-1"' in text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "exporter started" in stderr


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG)
    result = run_cli(f"--config.file={config}", "--check-config")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_names_a_misspelt_key_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG + "  - region_id: cn-shanghai\n    gatways: [vpn-def]\n")
    result = run_cli(f"--config.file={config}", "--check-config")
    assert result.returncode == 1
    assert "targets[1].gatways" in result.stdout


def test_invalid_config_fails_at_start_with_the_field_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("poll:\n  interval: soon\n" + VALID_CONFIG)
    result = run_cli(f"--config.file={config}", "--web.listen-address=127.0.0.1:0")
    assert result.returncode == 1
    assert "poll.interval" in result.stderr


async def call_simulator(port: int, secret: str) -> dict[str, object]:
    http = make_http_client(timeout=5.0)
    try:
        client = VpcClient(
            http,
            StaticCredentialsProvider("default", Credential(DEMO_ACCESS_KEY_ID, secret)),
            "cn-hangzhou",
            endpoint=f"http://127.0.0.1:{port}",
            retry=RetryPolicy(max_retries=0),
        )
        return await client.get_vpn_gateway_diagnose_result(vpn_gateway_id="vpn-hz1healthy")
    finally:
        await http.aclose()


def test_simulate_subcommand_answers_signed_requests_only() -> None:
    port = free_port()
    with cli_process("simulate", f"--listen-address=127.0.0.1:{port}", port=port):
        answer = asyncio.run(call_simulator(port, DEMO_ACCESS_KEY_SECRET))
        assert answer["VpnGatewayId"] == "vpn-hz1healthy"
        with pytest.raises(CloudError) as refused:
            asyncio.run(call_simulator(port, "not-the-secret"))
        assert refused.value.code == "SignatureDoesNotMatch"


def test_admin_enabled_without_authentication_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG + "admin:\n  enabled: true\n")
    result = run_cli(f"--config.file={config}", "--web.listen-address=127.0.0.1:0")
    assert result.returncode == 1
    assert "--admin.web.config.file" in result.stderr
    assert "exporter started" not in result.stderr


def test_metrics_listener_requires_basic_auth_from_its_web_config(tmp_path: Path) -> None:
    web_config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    args = ("--demo", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web_config}")
    with cli_process(*args, port=port):
        url = f"http://127.0.0.1:{port}/metrics"
        refused = httpx.get(url, timeout=2)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(url, auth=("prometheus", "wrong"), timeout=2).status_code == 401
        allowed = httpx.get(url, auth=("prometheus", "s3cret-pass"), timeout=2)
        assert allowed.status_code == 200
        assert "aliyun_vpn_build_info" in allowed.text


def test_a_busy_port_is_a_clear_error_and_exit_code_1() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_cli("--demo", f"--web.listen-address=127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
