"""No secret leaks: the exporter's command line runs with a recognisable AccessKey secret
(from the environment), STS token (from a file), admin password and bearer token, at debug
level; every endpoint of both listeners is called, and the failure paths are walked (cloud
errors and broken answers while polling and creating routes, authentication failures,
invalid bodies, reloads refused, start-up refused, `--check-config` on broken files). Then
every log line, metric, response body and header, and every `--check-config` output is
searched for each secret: plain, base64 (at every alignment, and as `Authorization: Basic`
sends it), URL-encoded, JSON- and Python-escaped.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import bcrypt
import httpx

from exporter.simulator.faults import Fault
from exporter.simulator.simulator import Simulator
from tests.admin_harness import CONNECTION, ROUTE
from tests.process_harness import BOUND, Process, exporter_process, simulator_thread

KEY_ID = "secrets-test-key"
AK_SECRET = 'AkSecret/+=&"\\qZx9-never-shown'
STS_TOKEN = 'StsToken/+=&"\\qZx9-never-shown'
ADMIN_USER = "operator"
ADMIN_PASSWORD = 'AdminPass/+=&"\\qZx9-never-shown'
BEARER = "BearerTok3n-0123456789abcdef-qZx9-never-shown"
SECRETS = {
    "AccessKey secret": AK_SECRET,
    "STS token": STS_TOKEN,
    "admin password": ADMIN_PASSWORD,
    "bearer token": BEARER,
}
AK_VARIABLE = "SECRETS_TEST_AK_SECRET"


def base64_forms(secret: bytes) -> list[str]:
    """What base64 of any text containing `secret` must contain, at each of the three
    alignments the secret can start at."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        start = -(-offset * 8 // 6)
        end = (offset + len(secret)) * 8 // 6
        forms.append(encoded[start:end])
    return forms


def encodings(secret: str) -> dict[str, str]:
    raw = secret.encode()
    forms = {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "python-escaped": repr(secret)[1:-1],
    }
    forms |= {f"base64 (alignment {i})": form for i, form in enumerate(base64_forms(raw))}
    if secret == ADMIN_PASSWORD:
        basic = base64.b64encode(f"{ADMIN_USER}:{secret}".encode()).decode()
        forms["Authorization: Basic"] = basic
    return forms


def leaks(texts: dict[str, str]) -> list[str]:
    found = []
    for where, text in texts.items():
        for name, secret in SECRETS.items():
            for encoding, form in encodings(secret).items():
                if form in text:
                    found.append(f"{name} ({encoding}) in {where}")
    return found


def test_the_search_finds_every_encoding_it_looks_for() -> None:
    for name, secret in SECRETS.items():
        for encoding, form in encodings(secret).items():
            assert leaks({"sample": f"x {form} y"}), (name, encoding)
    sent = "Authorization: Basic " + base64.b64encode(b"p:" + STS_TOKEN.encode()).decode()
    assert leaks({"header": sent})


def check_config(directory: Path, name: str, text: str, env: dict[str, str]) -> str:
    path = directory / name
    path.write_text(text)
    if "override" in name:
        env = {**env, "ALIYUN_VPN_EXPORTER_POLL__INTERVAL": AK_SECRET}
    done = subprocess.run(
        [sys.executable, "-m", "exporter", f"--config.file={path}", "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def broken_configs(endpoint: str) -> dict[str, str]:
    """Config files a user gets wrong, each with a secret where it must not be echoed."""
    valid = (
        "credentials:\n"
        "  default:\n"
        "    source: access_key\n"
        f"    access_key_id: {KEY_ID}\n"
        f"    access_key_secret: !env {AK_VARIABLE}\n"
        "    security_token: !file sts-token\n"
        f"api: {{endpoint: '{endpoint}'}}\n"
        "targets: [{region_id: cn-hangzhou, gateways: [vpn-hzadmin]}]\n"
    )
    quoted = json.dumps(AK_SECRET)
    return {
        "valid.yml": valid,
        "secret-under-unknown-key.yml": valid + f"secret_typo: {quoted}\n",
        "secret-as-region.yml": valid.replace("region_id: cn-hangzhou", f"region_id: {quoted}"),
        "secret-in-broken-yaml.yml": valid + f"poll: {{interval: {quoted}\n",
        "secret-as-number.yml": valid + f"api: {{max_retries: !env {AK_VARIABLE}}}\n",
        "secret-as-duration.yml": valid + f"poll: {{interval: {quoted}}}\n",
        "secret-as-endpoint.yml": valid.replace(f"'{endpoint}'", quoted),
        "secret-in-an-override.yml": valid,  # with ALIYUN_VPN_EXPORTER_POLL__INTERVAL set
    }
    # Not checked: a secret written as a mapping key (a profile name). Error messages name
    # the path of what is wrong, keys included: that is how a user finds the problem.


def exporter_config(endpoint: str, interval: str = "1s") -> str:
    return (
        "credentials:\n"
        "  default:\n"
        "    source: access_key\n"
        f"    access_key_id: {KEY_ID}\n"
        f"    access_key_secret: !env {AK_VARIABLE}\n"
        "    security_token: !file sts-token\n"
        f"poll: {{interval: {interval}}}\n"
        f"api: {{endpoint: '{endpoint}', timeout: 2s, max_retries: 1}}\n"
        "targets: [{region_id: cn-hangzhou, gateways: [vpn-hzadmin]}]\n"
        "admin: {enabled: true}\n"
    )


POLL_FAULTS = (
    Fault.error("SignatureDoesNotMatch", action="GetVpnGatewayDiagnoseResult"),
    Fault.error("InvalidAccessKeyId.NotFound", action="GetVpnGatewayDiagnoseResult"),
    Fault.error("Forbidden.RAM", action="GetVpnGatewayDiagnoseResult"),
    Fault.error(status=500, action="GetVpnGatewayDiagnoseResult"),
    Fault.throttle(retry_after_ms=10, action="GetVpnGatewayDiagnoseResult"),
    Fault.reset(action="GetVpnGatewayDiagnoseResult"),
    Fault.truncated_json(action="GetVpnGatewayDiagnoseResult"),
    Fault.html(action="GetVpnGatewayDiagnoseResult"),
)
CREATE_FAULTS = (  # answers the admin API does not retry (retried ones take its deadline)
    Fault.error("Forbidden.RAM", action="CreateVcoRouteEntry"),
    Fault.error("InvalidAccessKeyId.NotFound", action="CreateVcoRouteEntry"),
    Fault.error("SignatureDoesNotMatch", action="DescribeVpnConnections"),
    Fault.truncated_json(action="CreateVcoRouteEntry"),
)


def record(seen: dict[str, str], where: str, response: httpx.Response) -> httpx.Response:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    seen[f"{where} -> {response.status_code}"] = f"{headers}\n\n{response.text}"
    return response


def until_fired(simulator: Simulator, fault: Fault) -> None:
    deadline = time.monotonic() + BOUND
    while not any(f.fault == fault and f.fired for f in simulator.faults.installed()):
        assert time.monotonic() < deadline, f"{fault.kind} never fired"
        time.sleep(0.02)


def exercise(process: Process, simulator: Simulator) -> dict[str, str]:
    """Every endpoint of both listeners, and the failure paths; what came back."""
    seen: dict[str, str] = {}
    admin = (ADMIN_USER, ADMIN_PASSWORD)
    with httpx.Client(base_url=process.url, timeout=BOUND) as web:
        for path in ("/", "/healthz", "/readyz", "/metrics", "/nothing"):
            record(seen, f"GET {path}", web.get(path))
        record(seen, "HEAD /metrics", web.head("/metrics"))
        record(seen, "POST /metrics", web.post("/metrics", content=b"x"))
        for accept in ("application/openmetrics-text", "text/plain"):
            record(seen, f"GET /metrics {accept}", web.get("/metrics", headers={"Accept": accept}))
        gzip = web.get("/metrics", headers={"Accept-Encoding": "gzip"})
        record(seen, "GET /metrics gzip", gzip)
        record(seen, "POST /-/reload", web.post("/-/reload"))

    routes = f"/api/v1/vpn-connections/{CONNECTION}/routes"
    with httpx.Client(base_url=process.admin_url, timeout=BOUND) as api:
        bearer = {"Authorization": f"Bearer {BEARER}"}
        record(seen, "openapi", api.get("/api/v1/openapi.json", auth=admin))
        record(seen, "list", api.get(routes, params={"region_id": "cn-hangzhou"}, headers=bearer))
        record(seen, "create", api.post(routes, json=ROUTE, auth=admin))
        record(seen, "dry run", api.post(routes, json=ROUTE | {"dry_run": True}, auth=admin))
        record(seen, "invalid", api.post(routes, json=ROUTE | {"weight": 50}, auth=admin))
        record(seen, "malformed", api.post(routes, content=b"{", auth=admin))
        record(seen, "too large", api.post(routes, content=b" " * 20_000, auth=admin))
        wrong = (ADMIN_USER, ADMIN_PASSWORD + "-wrong")
        record(seen, "wrong password", api.post(routes, json=ROUTE, auth=wrong))
        record(seen, "wrong user", api.get(routes, auth=(ADMIN_PASSWORD, ADMIN_PASSWORD)))
        record(seen, "wrong token", api.get(routes, headers={"Authorization": f"Bearer {BEARER}x"}))
        for fault in CREATE_FAULTS:
            simulator.faults.add(fault)
            body = ROUTE | {"route_dest": "192.168.77.0/24"}
            record(
                seen,
                f"create under {fault.kind} {fault.code}",
                api.post(routes, json=body, auth=admin),
            )
            simulator.faults.clear()
        record(seen, "admin reload", api.post("/-/reload", auth=admin))

    for fault in POLL_FAULTS:  # polls every second: each fault is met by a real poll
        simulator.faults.add(fault)
        until_fired(simulator, fault)
        simulator.faults.clear()
    record(seen, "metrics after the faults", httpx.get(f"{process.url}/metrics", timeout=BOUND))

    # A reload the exporter refuses: the file names the secret where it must not be quoted.
    good = process.config.read_text()
    process.config.write_text(good + f"secret_typo: {json.dumps(AK_SECRET)}\n")
    record(seen, "refused reload", httpx.post(f"{process.url}/-/reload", timeout=BOUND))
    process.config.write_text(good)
    return seen


def test_no_secret_reaches_logs_metrics_bodies_or_check_config(tmp_path: Path) -> None:
    env = {**os.environ, AK_VARIABLE: AK_SECRET}
    (tmp_path / "sts-token").write_text(STS_TOKEN + "\n")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"pipeline:{BEARER}\n")
    admin_web = {
        "basic_auth_users": {
            ADMIN_USER: bcrypt.hashpw(ADMIN_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        },
        "bearer_tokens_file": str(tokens),
    }
    with simulator_thread() as (simulator, url):
        simulator.add_key_pair(KEY_ID, AK_SECRET, security_token=STS_TOKEN)
        with exporter_process(
            tmp_path,
            exporter_config(url),
            "--log.level=debug",
            "--web.enable-lifecycle",
            admin=True,
            admin_web=admin_web,
            env=env,
        ) as process:
            seen = exercise(process, simulator)
            assert process.stop() == 0
        seen["exporter log"] = process.log()
        for name, text in broken_configs(url).items():
            seen[f"--check-config {name}"] = check_config(tmp_path, name, text, env)
        # Start-up refused: the admin API enabled without its web config.
        refused = subprocess.run(
            [sys.executable, "-m", "exporter", f"--config.file={process.config}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        seen["refused start"] = refused.stdout + refused.stderr

    assert refused.returncode == 1
    log = seen["exporter log"]
    for what in ("route create attempt", "poll failed", "authentication failed", "reload"):
        assert what in log, what
    assert "exit 0" in seen["--check-config valid.yml"]
    assert sum("exit 1" in text for name, text in seen.items() if "check-config" in name) == 7
    assert leaks(seen) == []
