"""Start-up, reloads and shutdown of the exporter process (after the command line is parsed).

Signals: SIGHUP reloads the configuration (`exporter.reload`); SIGTERM and SIGINT stop the
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
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from exporter.admin.settings import AdminSettings, AdminSetupError
from exporter.app import Exporter, ListenSettings
from exporter.collect.sharding import UNSHARDED
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.reload import Reloader
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.web_config import WebConfig, WebConfigError, load_web_config

if TYPE_CHECKING:
    from exporter.admin.server import AdminServer

log = logging.getLogger(__name__)

ADMIN_STOP_GRACE = 5.0
"""Seconds admin requests in flight at shutdown may take to finish before being cancelled."""
SHUTDOWN_BOUND = 10.0
"""What the shutdown is designed to stay under: the admin grace, then each listener's
`Limits.stop_timeout` (the metrics listener stops meanwhile), with room to spare."""


@contextlib.asynccontextmanager
async def _config_for(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[Config, Callable[[], Config]]]:
    """The config from `--config.file` (or the demo's, with its simulator running), and how
    to load it again for a reload."""
    if args.demo:
        from exporter.demo import demo_config, running_demo_simulator

        async with running_demo_simulator() as endpoint:
            yield demo_config(endpoint), lambda: demo_config(endpoint)
    else:
        path = args.config_file
        yield load_config(path), lambda: load_config(path)


async def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit code 1 when the configuration is unusable."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Until the exporter runs, a SIGHUP (which would end the process) has nothing to reload.
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP during start-up ignored"))
    try:
        web_config = load_web_config(args.web_config_file) if args.web_config_file else None
        async with _config_for(args) as (config, load):
            admin_web_config = _admin_web_config(config, args.admin_web_config_file)
            metrics = SelfMetrics()
            reloader = Reloader(load, metrics)
            exporter = Exporter(
                config,
                listen=ListenSettings(
                    address=args.listen_address,
                    web_config=web_config,
                    lifecycle=reloader.endpoint("metrics")
                    if getattr(args, "enable_lifecycle", False)
                    else None,
                ),
                metrics=metrics,
                shard=getattr(args, "sharding", UNSHARDED),
            )
            admin = (
                None
                if admin_web_config is None
                else _admin_server(config, admin_web_config, exporter, reloader, args)
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
            loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
            try:
                await stop.wait()
            finally:
                await _shut_down(exporter, admin, reloader)
    except ConfigError as error:
        log.error("invalid configuration", extra={"fields": {"errors": str(error)}})
        return 1
    except (WebConfigError, AdminSetupError) as error:
        log.error("cannot start", extra={"fields": {"error": str(error)}})
        return 1
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    return 0


def _admin_web_config(config: Config, path: str | None) -> WebConfig | None:
    """The admin listener's checked web config; None when the admin API is off. The admin
    modules (FastAPI and all) are imported only when the config or the command line
    mentions the admin API: a third of the start-up time otherwise."""
    if not config.admin.enabled and path is None:
        return None
    from exporter.admin.server import load_admin_web_config

    return load_admin_web_config(config, path)


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
