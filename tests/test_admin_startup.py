"""Start-up checks of the admin API: enabled without authentication (or beyond loopback
without TLS), the exporter refuses to start and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.admin.server import AdminServer, AdminSetupError, load_admin_web_config
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.web_config import WebConfig, WebConfigError
from tests.admin_harness import PASSWORD_HASH, USER, admin_config

ENDPOINT = "http://127.0.0.1:1"


def write_web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "admin-web.yml"
    path.write_text(text)
    return path


def test_enabled_without_a_web_config_file_refuses_to_start() -> None:
    with pytest.raises(AdminSetupError, match=r"--admin\.web\.config\.file is not given"):
        load_admin_web_config(admin_config(ENDPOINT), None)


def test_enabled_with_a_web_config_without_authentication_refuses_to_start(
    tmp_path: Path,
) -> None:
    path = write_web_config(tmp_path, "http_server_config:\n  headers: {}\n")
    with pytest.raises(AdminSetupError, match="configures no authentication"):
        load_admin_web_config(admin_config(ENDPOINT), path)


def test_enabled_with_basic_auth_users_loads(tmp_path: Path) -> None:
    path = write_web_config(tmp_path, f"basic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n")
    web = load_admin_web_config(admin_config(ENDPOINT), path)
    assert web is not None and web.authenticates


def test_disabled_admin_needs_no_web_config() -> None:
    assert load_admin_web_config(admin_config(ENDPOINT, enabled=False), None) is None


def test_an_invalid_admin_web_config_is_reported_even_when_admin_is_disabled(
    tmp_path: Path,
) -> None:
    path = write_web_config(tmp_path, "basic_auth_users: [x]\n")
    with pytest.raises(WebConfigError):
        load_admin_web_config(admin_config(ENDPOINT, enabled=False), path)


def test_admin_server_without_authentication_refuses_to_start() -> None:
    with pytest.raises(AdminSetupError, match="needs authentication"):
        AdminServer(
            admin_config(ENDPOINT),
            WebConfig(),
            lambda region: pytest.fail("no client may be built"),
            SelfMetrics(),
            "127.0.0.1:0",
        )


def test_admin_server_beyond_loopback_without_tls_refuses_to_start() -> None:
    web = WebConfig.model_validate({"basic_auth_users": {USER: PASSWORD_HASH}})
    with pytest.raises(AdminSetupError, match="without TLS"):
        AdminServer(
            admin_config(ENDPOINT),
            web,
            lambda region: pytest.fail("no client may be built"),
            SelfMetrics(),
            ":9748",
        )
