"""The command line as a user runs it: a real process, real ports, real signals."""

from __future__ import annotations

import asyncio
import os
import re
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
from exporter.cli import main
from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import StaticCredentialsProvider
from exporter.cloud.errors import CloudError
from exporter.cloud.keys import Credential
from exporter.cloud.retry import RetryPolicy
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from tests.demo_harness import STARTUP_BOUND, cli_process, free_port
from tests.exporter_rig import samples
from tests.pki import make_pki

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
        deadline = time.monotonic() + STARTUP_BOUND
        while text.count("aliyun_vpn_poll_duration_seconds{") < 6:  # every gateway polled
            assert time.monotonic() < deadline, "not every demo gateway was polled"
            time.sleep(0.1)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "exporter started" in stderr
    (demo,) = [line for line in stderr.splitlines() if "demo mode" in line]
    assert re.search(r" simulator=http://127\.0\.0\.1:\d+$", demo), demo
    (serving,) = [line for line in stderr.splitlines() if "msg=serving" in line]
    assert f"metrics=http://127.0.0.1:{port}/metrics" in serving
    assert f"status_page=http://127.0.0.1:{port}/" in serving
    cycles = [line for line in stderr.splitlines() if "first poll cycle completed" in line]
    assert sorted(line.split(" target=")[1].split()[0] for line in cycles) == [
        "default/ap-southeast-1",
        "default/cn-hangzhou",
    ], "one line per target, once"
    assert "logger=uvicorn" not in stderr and "logger=apscheduler" not in stderr


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


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--web.listen-address=13759"], "'13759' is not [host]:port (did you mean ':13759'?)"),
        (["--web.listen-address=127.0.0.1:99999"], "port 99999 is not 0-65535"),
        (["--web.listen-address=127.0.0.1:http"], "has no port number"),
        (["--admin.listen-address=localhost"], "'localhost' is not [host]:port"),
        (["--web.health-listen-address=:x"], "has no port number"),
        (["--log.level=verbose"], "unknown log level 'verbose'"),
        (["--log.format=xml"], "invalid choice: 'xml'"),
        (["--total-shards=0"], "'0' is not a whole number of at least 1"),
        (["--total-shards=2", "--shard=7"], "--shard must be between 0 and 1"),
        (["--config.file=x.yml"], "--config.file: not allowed with argument --demo"),
    ],
)
def test_a_bad_flag_value_is_one_line_and_exit_code_2(flags: list[str], says: str | None) -> None:
    result = run_cli("--demo", *flags)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aliyun-vpn-exporter: error: ")
    assert says is None or says in line, line


def test_log_level_warn_is_accepted_as_prometheus_spells_it(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG)
    result = run_cli(f"--config.file={config}", "--check-config", "--log.level=warn")
    assert result.returncode == 0, result.stderr


def test_help_names_the_subcommands_defaults_and_environment_overrides() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    usage = result.stdout.split("\n\n")[0]
    assert "simulate" in usage and "healthcheck" in usage and "--demo" in usage
    text = " ".join(result.stdout.split())
    assert "debug, info, warn or error: the exporter's own messages (default info)" in text
    assert "logfmt or json, one line per event (default logfmt)" in text
    assert "ALIYUN_VPN_EXPORTER_POLL__INTERVAL=1m" in text
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in text


def check_config(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`--check-config` through the console script's entry point, in this process."""
    code = main([*args, "--check-config"])
    return code, capsys.readouterr().out


def test_check_config_reports_every_problem_a_start_would_meet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "admin:\n  enabled: true\n  enabled: true\n"
        "targets:\n  - region_id: cn-hangzhou\n    gateways: [vpn-a]\n    gateways: [vpn-b]\n"
    )
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n"
        "basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n"
    )
    code, output = check_config(capsys, f"--config.file={config}", f"--web.config.file={web}")
    assert code == 1
    lines = output.splitlines()
    assert lines[0] == f"{config}: invalid configuration"
    problems = "\n".join(lines[1:])
    assert f"{config}:3:3: found the key 'enabled' twice" in problems
    assert f"{config}:7:5: found the key 'gateways' twice" in problems
    assert f"--web.config.file={web}: tls_server_config.cert_file: no such file" in problems
    assert "basic_auth_users" in problems and "bcrypt" in problems

    config.write_text(VALID_CONFIG + "admin:\n  enabled: true\n")
    code, output = check_config(capsys, f"--config.file={config}")
    assert code == 1
    assert "admin.enabled is true but --admin.web.config.file is not given" in output


def test_check_config_summarises_the_web_config_files_of_a_valid_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG)
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pass", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    code, output = check_config(capsys, f"--config.file={config}", f"--web.config.file={web}")
    assert code == 0, output
    assert (
        "  --web.config.file: OK, TLS, client certificates: RequireAndVerifyClientCert, "
        "basic auth (1 users)" in output.splitlines()
    )


def test_healthcheck_works_under_basic_auth_and_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pass", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    port, health = free_port(), free_port()
    args = (
        "--demo",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={web}",
        f"--web.health-listen-address=127.0.0.1:{health}",
    )
    with cli_process(*args, port=port):
        with pytest.raises(httpx.HTTPError):  # the metrics listener wants a certificate
            httpx.get(f"https://localhost:{port}/healthz", verify=pki.client_context(cert=None))
        alive = run_cli("healthcheck", f"--address=127.0.0.1:{health}")
        assert alive.returncode == 0, alive.stderr
        assert alive.stdout == f"http://127.0.0.1:{health}/healthz: 200 ok\n"
        deadline = time.monotonic() + STARTUP_BOUND
        while (ready := run_cli("healthcheck", "--ready", f"--address=:{health}")).returncode:
            assert time.monotonic() < deadline, ready.stderr
        # Only the probes: nothing else is served without authentication.
        assert httpx.get(f"http://127.0.0.1:{health}/metrics", timeout=2).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{health}/", timeout=2).status_code == 404
    stopped = run_cli("healthcheck", f"--address=127.0.0.1:{health}")
    assert stopped.returncode == 1
    assert "Connection refused" in stopped.stderr


def test_the_health_listener_must_be_on_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(VALID_CONFIG)
    code, output = check_config(
        capsys, f"--config.file={config}", "--web.health-listen-address=0.0.0.0:9746"
    )
    assert code == 1
    assert "listens on loopback only" in output


def _failed_everywhere(text: str) -> bool:
    polls = [value for _, value in samples(text, "aliyun_vpn_poll_success")]
    listings = [value for _, value in samples(text, "aliyun_vpn_listing_success")]
    return polls == [0] and listings == [0, 0]


def test_no_credentials_is_one_line_naming_the_variables_to_set(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "targets:\n  - region_id: cn-hangzhou\n    gateways: [vpn-abc]\n"
        "    discover: {tags: {env: prod}}\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    environ.update(
        HOME=str(tmp_path),
        ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
        ALIBABA_CLOUD_CLI_PROFILE_DISABLED="true",
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        deadline = time.monotonic() + STARTUP_BOUND
        text = ""
        # The poll and both listings have failed for want of credentials.
        while not _failed_everywhere(text):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.1)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                continue
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    problems = [line for line in stderr.splitlines() if " level=info " not in line]
    (line,) = problems
    assert line.split(" msg=")[1].startswith(
        '"credentials profile failed: no credentials found: set ALIBABA_CLOUD_ACCESS_KEY_ID '
        "and ALIBABA_CLOUD_ACCESS_KEY_SECRET"
    )
    assert "tried: credentials_file;" in line
    assert len(line) < 600
