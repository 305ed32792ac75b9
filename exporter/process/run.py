"""Start-up, reloads and shutdown of the exporter process (after the command line is parsed).

Signals: SIGHUP reloads the configuration (`exporter.process.reload`); SIGTERM and SIGINT stop the
process within `SHUTDOWN_BOUND` seconds, in this order: no new reloads; the scheduler stops
(no new polls, those in flight cancelled); the admin API refuses new requests and lets
those in flight finish for up to `ADMIN_STOP_GRACE` seconds (then cancels them: they
answer 503 and keep their audit line) while the metrics listener stops; the HTTP client
closes. The exit code is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.admin.settings import AdminSettings, AdminSetupError
from exporter.app import Exporter, ListenSettings
from exporter.collect.sharding import UNSHARDED
from exporter.config.loader import load_config, summary
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.process.daemon_call import outcome_of, start_daemon_call
from exporter.process.file_modes import holds_secrets, warn_readable_secrets
from exporter.process.reload import Reloader
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.acceptor import raise_open_file_limit
from exporter.web.listener import is_loopback, open_files_needed, parse_listen_address
from exporter.web.web_config import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from exporter.admin.server import AdminServer

log = logging.getLogger(__name__)

ADMIN_STOP_GRACE = 5.0
"""Seconds admin requests in flight at shutdown may take to finish before being cancelled."""
SHUTDOWN_BOUND = 10.0
"""What the shutdown is designed to stay under: the admin grace, then each listener's
`Limits.stop_timeout` (the metrics listener stops meanwhile), with room to spare."""


class StartupError(Exception):
    """What keeps the exporter from starting: every problem found, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclasses.dataclass(frozen=True, slots=True)
class Startup:
    """Everything a start reads from files and checks before it binds a port."""

    config: Config
    web_config: WebConfig | None
    admin_web_config: WebConfig | None
    """None when the admin API is disabled."""


def prepare(args: argparse.Namespace, config: Config | None = None) -> Startup:
    """Read and check what a start needs: the config (`config`, or `--config.file`), both
    web config files (certificates loadable, hashes valid), the admin API's requirements
    and the health listener's address. `--check-config` runs exactly this.

    Raises `StartupError` naming every problem found, not only the first.
    """
    problems: list[str] = []
    web_config = _web_config(args.web_config_file, "--web.config.file", problems)
    admin_file = args.admin_web_config_file
    admin_web_config = _web_config(admin_file, "--admin.web.config.file", problems)
    if config is None:
        try:
            config = load_config(args.config_file)
        except ConfigError as error:
            problems += str(error).splitlines()
    if config is not None and (config.admin.enabled or admin_file):
        # The admin modules (FastAPI and all) are imported only when the config or the
        # command line mentions the admin API: a third of the start-up time otherwise.
        from exporter.admin.server import admin_setup_problems

        problems += admin_setup_problems(
            config, admin_web_config, admin_file, args.admin_listen_address
        )
    health = getattr(args, "health_listen_address", None)
    if health and not is_loopback(parse_listen_address(health)[0]):
        problems.append(
            f"--web.health-listen-address={health}: the health listener has no TLS or "
            "authentication, so it listens on loopback only (127.0.0.1 or [::1])"
        )
    if problems or config is None:
        raise StartupError(problems)
    return Startup(config, web_config, admin_web_config if config.admin.enabled else None)


def _web_config(path: str | None, flag: str, problems: list[str]) -> WebConfig | None:
    if path is None:
        return None
    try:
        return load_web_config(path)
    except WebConfigError as error:
        problems += [f"{flag}={path}: {problem}" for problem in error.problems]
        return None


def check(args: argparse.Namespace) -> tuple[int, str]:
    """`--check-config`: the exit code and what to print (every problem, or a summary
    with the warnings; never a secret)."""
    try:
        startup = prepare(args)
    except StartupError as error:
        lines = [f"{args.config_file}: invalid configuration"]
        lines += [f"  {problem}" for problem in error.problems]
        return 1, "\n".join(lines)
    lines = [summary(args.config_file, startup.config)]
    for flag, web_config in (
        ("--web.config.file", startup.web_config),
        ("--admin.web.config.file", startup.admin_web_config),
    ):
        if web_config is not None:
            lines.append(f"  {flag}: {_describe(web_config)}")
    return 0, "\n".join(lines)


def _describe(web_config: WebConfig) -> str:
    tls = web_config.tls_server_config
    parts = ["no TLS" if tls is None else f"TLS, client certificates: {tls.client_auth_type}"]
    if web_config.basic_auth_users:
        parts.append(f"basic auth ({len(web_config.basic_auth_users)} users)")
    if web_config.bearer_tokens:
        parts.append(f"bearer tokens ({len(web_config.bearer_tokens)})")
    return "OK, " + ", ".join(parts)


class StoppedDuringStartup(Exception):
    """SIGTERM or SIGINT came while the start was still reading its files."""


@contextlib.asynccontextmanager
async def _config_for(
    args: argparse.Namespace, stop: asyncio.Event
) -> AsyncIterator[tuple[Startup, Callable[[], Config]]]:
    """What the start needs, with the config from `--config.file` (or the demo's, with its
    simulator running), and how to load the config again for a reload. The files are read
    on a daemon thread: a `!file` naming a FIFO must not make the process deaf to
    `SIGTERM` (`StoppedDuringStartup`)."""
    if args.demo:
        from exporter.demo import demo_config, running_demo_simulator

        async with running_demo_simulator() as endpoint:
            startup = prepare(args, demo_config(endpoint))
            log.info(
                "demo mode: polling the built-in API simulator's demo fleet, no cloud account",
                extra={"fields": {"simulator": endpoint}},
            )
            yield startup, lambda: demo_config(endpoint)
    else:
        path = args.config_file
        _, prepared = start_daemon_call(lambda: prepare(args), "config load")
        prepared_startup = await outcome_of(prepared, give_up=stop)
        if prepared_startup is None:
            raise StoppedDuringStartup
        yield prepared_startup, lambda: load_config(path)


async def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit code 1 when the configuration is unusable."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Until the exporter runs, a SIGHUP (which would end the process) has nothing to reload.
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP during start-up ignored"))
    try:
        async with _config_for(args, stop) as (startup, load):
            config = startup.config
            _check_resources(args, startup)
            for path, message in config.warnings():
                log.warning(
                    "configuration warning", extra={"fields": {"key": path, "problem": message}}
                )
            metrics = SelfMetrics()
            reloader = Reloader(load, metrics)
            exporter = Exporter(
                config,
                listen=ListenSettings(
                    address=args.listen_address,
                    web_config=startup.web_config,
                    lifecycle=reloader.endpoint("metrics")
                    if getattr(args, "enable_lifecycle", False)
                    else None,
                    health_address=getattr(args, "health_listen_address", None),
                ),
                metrics=metrics,
                shard=getattr(args, "sharding", UNSHARDED),
            )
            admin = (
                None
                if startup.admin_web_config is None
                else _admin_server(config, startup.admin_web_config, exporter, reloader, args)
            )
            reloader.bind(exporter, admin)
            try:
                await exporter.start()
                if admin is not None:
                    await admin.start()
            except OSError as error:
                log.error("cannot start", extra={"fields": {"error": str(error)}})
                await exporter.stop()
                return 1
            _log_urls(exporter, startup)
            # What exists now (modules, the configuration, the listeners) lives as long as
            # the process: the cyclic garbage collector need not scan it again on every
            # full collection (a stall that grows with the heap). A reload unfreezes it.
            gc.freeze()
            loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
            try:
                await stop.wait()
            finally:
                await _shut_down(exporter, admin, reloader)
    except StartupError as error:
        log.error("invalid configuration", extra={"fields": {"errors": str(error)}})
        return 1
    except StoppedDuringStartup:
        log.info("stopped while reading the configuration")
    except AdminSetupError as error:
        log.error("cannot start", extra={"fields": {"error": str(error)}})
        return 1
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    return 0


def _check_resources(args: argparse.Namespace, startup: Startup) -> None:
    """Raise the open-file limit as far as allowed and warn when it stays below what the
    listeners' limits need; warn about secret files other users can read."""
    soft, hard = raise_open_file_limit()
    health = getattr(args, "health_listen_address", None) is not None
    listeners = 1 + (startup.admin_web_config is not None) + health
    needed = open_files_needed(listeners)
    if soft < needed:
        log.warning(
            "the open-file limit is below what the listeners may hold: connections beyond "
            "it wait until others close (raise LimitNOFILE, or ulimit -n / --ulimit nofile)",
            extra={"fields": {"soft_limit": soft, "hard_limit": hard, "needed": needed}},
        )
    config_file = None if args.demo else Path(args.config_file)
    paths = [config_file] if config_file and holds_secrets(config_file, startup.config) else []
    for path, web_config in (
        (args.web_config_file, startup.web_config),
        (args.admin_web_config_file, startup.admin_web_config),
    ):
        if path:
            paths.append(Path(path))
        if web_config is not None and web_config.bearer_tokens_file is not None:
            paths.append(web_config.bearer_tokens_file)
        if web_config is not None and web_config.tls_server_config is not None:
            paths.append(web_config.tls_server_config.key_file)
    warn_readable_secrets(paths)


def _admin_server(
    config: Config,
    web_config: WebConfig,
    exporter: Exporter,
    reloader: Reloader,
    args: argparse.Namespace,
) -> AdminServer:
    from exporter.admin.server import AdminServer

    return AdminServer(
        config,
        web_config,
        exporter.region_client,
        exporter.metrics,
        args.admin_listen_address,
        settings=dataclasses.replace(AdminSettings(), stop_grace=ADMIN_STOP_GRACE),
        lifecycle=reloader.endpoint("admin"),
    )


def _log_urls(exporter: Exporter, startup: Startup) -> None:
    """One line with the addresses a user opens first."""
    scheme = "https" if startup.web_config and startup.web_config.tls_server_config else "http"
    host = exporter.listener.address.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    base = f"{scheme}://{host}:{exporter.listener.port}"
    log.info(
        "serving",
        extra={"fields": {"metrics": f"{base}/metrics", "status_page": f"{base}/"}},
    )


async def _shut_down(exporter: Exporter, admin: AdminServer | None, reloader: Reloader) -> None:
    log.info("shutting down")
    await reloader.close()
    await exporter.stop_polling()
    stopping = [exporter.listener.stop()]
    if admin is not None:
        stopping.append(admin.stop())
    await asyncio.gather(*stopping)
    await exporter.stop()
    log.info("stopped")
