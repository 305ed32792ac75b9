"""The admin listener: `AdminServer`, and the start-up checks that keep it safe.

The admin API is off by default. Enabled, it needs `--admin.web.config.file` with basic auth
users or bearer tokens; without them the exporter refuses to start and says why. Listening
beyond loopback also needs TLS, so that passwords and tokens never cross a network in clear.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

from exporter.admin.app import AdminApi
from exporter.admin.audit import Audit
from exporter.admin.auth import AdminGate
from exporter.admin.idempotency import IdempotencyStore
from exporter.admin.service import RouteService
from exporter.admin.settings import AdminSettings, AdminSetupError
from exporter.clock import Clock, SystemClock
from exporter.cloud.client import VpcClient
from exporter.config.model import Config
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.authentication import ResponseHeaders, authenticator_for
from exporter.web.listener import Limits, Listener, is_loopback, parse_listen_address
from exporter.web.web_config import WebConfig, load_web_config

log = logging.getLogger(__name__)

REALM = "aliyun-vpn-exporter admin"


def load_admin_web_config(config: Config, path: str | Path | None) -> WebConfig | None:
    """The admin listener's web config (`--admin.web.config.file`), checked for start-up.

    None when the admin API is disabled (a given file is still validated). Raises
    `AdminSetupError` when it is enabled without a file or without authentication, and
    `exporter.web.web_config.WebConfigError` when the file is invalid.
    """
    web_config = None if path is None else load_web_config(path)
    problems = admin_setup_problems(config, web_config, path)
    if problems:
        raise AdminSetupError(problems[0])
    return web_config if config.admin.enabled else None


def admin_setup_problems(
    config: Config, web_config: WebConfig | None, path: str | Path | None, address: str = ""
) -> list[str]:
    """Why the admin API cannot start as configured (empty when it can, or is disabled):
    enabled without a web config, without authentication, or, when `address` is given,
    beyond loopback without TLS."""
    if not config.admin.enabled:
        return []
    if web_config is None:
        return [
            "admin.enabled is true but --admin.web.config.file is not given: the admin API "
            "changes routes and must require authentication (basic_auth_users or "
            "bearer_tokens_file)"
        ]
    problems = []
    if not web_config.authenticates:
        problems.append(
            f"admin.enabled is true but {path} configures no authentication: add "
            "basic_auth_users (bcrypt hashes) or bearer_tokens_file"
        )
    clear_text = _clear_text_problem(web_config, address) if address else None
    if clear_text:
        problems.append(clear_text)
    return problems


def _clear_text_problem(web_config: WebConfig, address: str) -> str | None:
    host, _ = parse_listen_address(address)
    if web_config.tls_server_config is None and not is_loopback(host):
        return (
            f"the admin API would listen on {address} without TLS, so credentials would "
            "cross the network in clear: add tls_server_config to the admin web config, "
            "or listen on 127.0.0.1"
        )
    return None


class AdminServer:
    """The admin API on its own listener (`--admin.listen-address`).

    `clients` gives the VPC client of a region (the exporter's, sharing its rate budgets);
    only regions some target covers are served. `stop` refuses new requests, lets those in
    flight finish for up to `settings.stop_grace` seconds, cancels the rest, then closes.
    """

    def __init__(
        self,
        config: Config,
        web_config: WebConfig,
        clients: Callable[[str], VpcClient],
        metrics: SelfMetrics,
        address: str,
        *,
        settings: AdminSettings | None = None,
        clock: Clock | None = None,
        lifecycle: Callable[[ASGIApp], ASGIApp] | None = None,
        limits: Limits | None = None,
    ) -> None:
        """`lifecycle` wraps the API with the lifecycle endpoints (`/-/reload`, see
        `exporter.process.reload`), behind the same authentication; `limits` bound what a client
        may hold of the listener (default: `Limits()`)."""
        if not web_config.authenticates:
            raise AdminSetupError(
                "the admin API needs authentication: basic_auth_users or bearer_tokens_file"
            )
        clear_text = _clear_text_problem(web_config, address)
        if clear_text:
            raise AdminSetupError(clear_text)
        self.settings = settings or AdminSettings()
        clock = clock or SystemClock()
        authenticator = authenticator_for(web_config, REALM)
        audit = Audit(metrics)
        store = IdempotencyStore(
            ttl=self.settings.idempotency_ttl,
            max_entries=self.settings.idempotency_max_entries,
            clock=clock.monotonic,
        )
        schemes = {}
        if web_config.basic_auth_users:
            schemes["basicAuth"] = {"type": "http", "scheme": "basic"}
        if web_config.bearer_tokens:
            schemes["bearerAuth"] = {"type": "http", "scheme": "bearer"}
        self.api = AdminApi(
            config.admin,
            config.regions,
            RouteService(clients, self.settings, clock),
            store,
            audit,
            security_schemes=schemes,
        )
        self._gate = AdminGate(
            self.api.app if lifecycle is None else lifecycle(self.api.app),
            authenticator,
            audit,
            max_body_bytes=self.settings.max_body_bytes,
            retry_after=max(1, math.ceil(self.settings.retry_after)),
        )
        app = ResponseHeaders(self._gate, web_config.http_server_config.headers)
        self.listener = Listener(app, address, web_config.tls_settings(), limits)

    @property
    def port(self) -> int:
        """The bound port (useful with `:0`)."""
        return self.listener.port

    def reconfigure(self, config: Config) -> None:
        """Follow a reloaded configuration: its allow-lists and regions."""
        self.api.reconfigure(config.admin, config.regions)

    async def start(self) -> None:
        await self.listener.start()
        log.info(
            "admin API started",
            extra={"fields": {"listen_address": self.listener.address, "port": self.port}},
        )

    async def stop(self) -> None:
        self._gate.drain()
        if not await self._gate.wait_idle(self.settings.stop_grace):
            cancelled = self._gate.cancel_in_flight()
            log.warning(
                "admin requests cancelled at shutdown",
                extra={
                    "fields": {"requests": cancelled, "grace_seconds": self.settings.stop_grace}
                },
            )
            await self._gate.wait_idle(self.settings.stop_grace)
        await self.listener.stop()
