"""Reloading the configuration while the exporter runs: SIGHUP and `POST /-/reload`.

As in Prometheus, a reload reads the config file again. A valid one is swapped in without
dropping the listeners (`Exporter.reconfigure`): targets and gateways that went lose their
series, new ones appear, those that stay keep their last good data. An invalid one is
logged with every problem, the running configuration stays, and
`aliyun_vpn_config_last_reload_successful` drops to 0 until a reload succeeds;
`aliyun_vpn_config_last_reload_success_timestamp_seconds` says when the running
configuration was loaded.

Triggers: SIGHUP; `POST` (or `PUT`) `/-/reload` on the admin listener when the admin API is
enabled (authenticated like every admin request); on the metrics listener only with
`--web.enable-lifecycle` (behind its web config's authentication, if any). Reloads never
overlap: one asked for while another runs waits for it.

Reading the file can hang: a `!file` naming a FIFO nobody writes to, a hung network mount.
So the file is read on a daemon thread of its own (`exporter.process.daemon_call`), a
load has a deadline (`LOAD_TIMEOUT`; then the reload fails and the running configuration
stays), a new reload is refused while an earlier load is still stuck, and shutting down
never waits for a load.

A reload cannot change the command line, the web config files, or whether the admin API
is enabled (`admin.enabled`): a reload that changes it fails; restart the exporter instead.
The admin API's allow-lists and regions do follow the new configuration.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.clock import Clock, SystemClock
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.process.daemon_call import outcome_of, start_daemon_call
from exporter.telemetry.self_metrics import SelfMetrics

if TYPE_CHECKING:
    from exporter.admin.server import AdminServer
    from exporter.app import Exporter

log = logging.getLogger(__name__)

LOAD_TIMEOUT = 30.0
"""Seconds reading the configuration may take on a reload."""
CLOSE_GRACE = 2.0
"""Seconds `Reloader.close` waits for a reload that is applying a new configuration."""
RELOAD_PATH = "/-/reload"
RELOAD_METHODS = ("POST", "PUT")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """How one reload ended; `message` is safe to show (it never holds a secret)."""

    success: bool
    changed: bool = False
    message: str = ""


class Reloader:
    """Reloads the configuration from `load` into the bound exporter (and admin API)."""

    def __init__(
        self,
        load: Callable[[], Config],
        metrics: SelfMetrics,
        clock: Clock | None = None,
        *,
        load_timeout: float = LOAD_TIMEOUT,
    ) -> None:
        self._load = load
        self._load_timeout = load_timeout
        self._read_finished: threading.Event | None = None
        """Set when the last read of the configuration returned (or raised); unset while
        it is still stuck. Its thread may live a moment longer, so its liveness cannot tell."""
        self._closing = asyncio.Event()
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._lock = asyncio.Lock()
        self._exporter: Exporter | None = None
        self._admin: AdminServer | None = None
        self._closed = False
        self._signalled: set[asyncio.Task[ReloadOutcome]] = set()

    def bind(self, exporter: Exporter, admin: AdminServer | None = None) -> None:
        """What a reload reconfigures."""
        self._exporter = exporter
        self._admin = admin

    def endpoint(self, listener: str) -> Callable[[ASGIApp], ASGIApp]:
        """A wrapper adding `/-/reload` to a listener's app (`listener` names it in logs)."""
        return lambda app: Lifecycle(app, self, listener)

    def on_signal(self) -> None:
        """SIGHUP: reload in the background (a signal handler cannot wait)."""
        task = asyncio.ensure_future(self.reload("SIGHUP"))
        self._signalled.add(task)
        task.add_done_callback(self._signalled.discard)

    async def close(self) -> None:
        """Refuse further reloads, abandon a load in progress, and wait (briefly) for a
        reload that is applying its configuration (at shutdown)."""
        self._closed = True
        self._closing.set()
        try:
            async with asyncio.timeout(CLOSE_GRACE), self._lock:
                pass
        except TimeoutError:
            log.warning("shutting down while a reload is still being applied")

    async def reload(
        self, trigger: str, *, user: str | None = None, remote_addr: str | None = None
    ) -> ReloadOutcome:
        """Load the configuration again and apply it; never raises."""
        exporter = self._exporter
        if exporter is None or self._closed:
            return ReloadOutcome(False, message="the exporter is not running")
        async with self._lock:
            if self._closed:
                return ReloadOutcome(False, message="the exporter is stopping")
            fields = {"trigger": trigger, "user": user, "remote_addr": remote_addr}
            log.info("reloading the configuration", extra={"fields": fields})
            if self._read_finished is not None and not self._read_finished.is_set():
                return self._failed(
                    fields,
                    "an earlier reload is still stuck reading the configuration (a !file on "
                    "a FIFO or a hung mount?); the running configuration stays",
                )
            try:
                config = await self._load_with_deadline()
            except ConfigError as error:
                return self._failed(fields, f"invalid configuration:\n{error}")
            except TimeoutError:
                return self._failed(
                    fields,
                    f"reading the configuration took more than {self._load_timeout:g} s (a "
                    "!file on a FIFO or a hung mount?); the running configuration stays",
                )
            if config is None:
                return ReloadOutcome(False, message="the exporter is stopping")
            if config.admin.enabled != exporter.config.admin.enabled:
                return self._failed(
                    fields,
                    "admin.enabled cannot change on a reload: restart the exporter to "
                    f"{'enable' if config.admin.enabled else 'disable'} the admin API",
                )
            try:
                changed = await exporter.reconfigure(config)
            except Exception as error:  # the new parts could not be built
                log.debug("reload failed", exc_info=True)
                return self._failed(fields, f"cannot apply the configuration: {error}")
            if self._admin is not None:
                self._admin.reconfigure(config)
            if changed:
                gc.unfreeze()  # what start-up froze may be garbage now (`exporter.process.run`)
            self._metrics.config_reload_success.set(1)
            self._metrics.config_reload_timestamp.set(self._clock.time())
            gateways = sum(len(plan.keys) for plan in exporter.scheduler.plans)
            log.info(
                "configuration reloaded" if changed else "configuration unchanged",
                extra={
                    "fields": {
                        **fields,
                        "targets": len(exporter.scheduler.plans),
                        "gateways": gateways,
                    }
                },
            )
            return ReloadOutcome(
                True,
                changed,
                "configuration reloaded" if changed else "configuration unchanged",
            )

    async def _load_with_deadline(self) -> Config | None:
        """The configuration, read on a daemon thread (parsing thousands of gateways would
        hold up scrapes on the loop, and the read may never end); None when the exporter
        started stopping meanwhile. Raises what loading raised, or TimeoutError."""
        finished = self._read_finished = threading.Event()

        def read() -> Config:
            try:
                return self._load()
            finally:
                finished.set()

        _, loaded = start_daemon_call(read, "config reload")
        return await outcome_of(loaded, give_up=self._closing, timeout=self._load_timeout)

    def _failed(self, fields: dict[str, str | None], message: str) -> ReloadOutcome:
        self._metrics.config_reload_success.set(0)
        log.error(
            "configuration reload failed, the previous configuration keeps running",
            extra={"fields": {**fields, "error": message}},
        )
        return ReloadOutcome(False, message=message)


class Lifecycle:
    """ASGI middleware serving `POST`/`PUT /-/reload` in front of `app` (200 when the
    configuration was reloaded or unchanged, 500 with the problems when it was refused, as
    Prometheus answers; 405 to other methods)."""

    def __init__(self, app: ASGIApp, reloader: Reloader, listener: str) -> None:
        self.app = app
        self.reloader = reloader
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != RELOAD_PATH:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in RELOAD_METHODS:
            await _answer(send, 405, b"method not allowed\n", [(b"allow", b"POST, PUT")])
            return
        client = scope.get("client")
        principal = scope.get("state", {}).get("principal")
        outcome = await self.reloader.reload(
            f"POST {RELOAD_PATH} ({self.listener} listener)",
            user=getattr(principal, "name", None),
            remote_addr=client[0] if client else None,
        )
        if outcome.success:
            await _answer(send, 200, f"{outcome.message}\n".encode())
        else:
            body = f"failed to reload the configuration: {outcome.message}\n".encode()
            await _answer(send, 500, body)


async def _answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
