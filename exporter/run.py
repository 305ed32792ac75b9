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

from exporter.admin.server import AdminServer, AdminSetupError, load_admin_web_config
from exporter.admin.settings import AdminSettings
from exporter.app import Exporter, ListenSettings
from exporter.collect.sharding import UNSHARDED
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError
from exporter.reload import Reloader
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.web_config import WebConfigError, load_web_config

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
            admin_web_config = load_admin_web_config(config, args.admin_web_config_file)
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
                else AdminServer(
                    config,
                    admin_web_config,
                    exporter.region_client,
                    exporter.metrics,
                    args.admin_listen_address,
                    settings=dataclasses.replace(AdminSettings(), stop_grace=ADMIN_STOP_GRACE),
                    lifecycle=reloader.endpoint("admin"),
                )
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
