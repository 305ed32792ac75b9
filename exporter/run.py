"""Start-up and shutdown of the exporter process (after the command line is parsed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from exporter.admin.server import AdminServer, AdminSetupError, load_admin_web_config
from exporter.app import Exporter, ListenSettings
from exporter.config import Config, ConfigError, load_config
from exporter.sharding import UNSHARDED
from exporter.web_config import WebConfigError, load_web_config

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def _config_for(args: argparse.Namespace) -> AsyncIterator[Config]:
    """The config from `--config.file`, or the demo's (with its simulator running)."""
    if args.demo:
        from exporter.demo import demo_config, running_demo_simulator

        async with running_demo_simulator() as endpoint:
            yield demo_config(endpoint)
    else:
        yield load_config(args.config_file)


async def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT; exit code 1 when the configuration is unusable."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        web_config = load_web_config(args.web_config_file) if args.web_config_file else None
        async with _config_for(args) as config:
            admin_web_config = load_admin_web_config(config, args.admin_web_config_file)
            exporter = Exporter(
                config,
                listen=ListenSettings(address=args.listen_address, web_config=web_config),
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
                )
            )
            try:
                await exporter.start()
                if admin is not None:
                    await admin.start()
            except OSError as error:
                log.error("cannot start", extra={"fields": {"error": str(error)}})
                await exporter.stop()
                return 1
            await stop.wait()
            log.info("shutting down")
            if admin is not None:
                await admin.stop()
            await exporter.stop()
    except ConfigError as error:
        log.error("invalid configuration", extra={"fields": {"errors": str(error)}})
        return 1
    except (WebConfigError, AdminSetupError) as error:
        log.error("cannot start", extra={"fields": {"error": str(error)}})
        return 1
    return 0
