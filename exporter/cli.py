"""Command line: Prometheus-style flags, `--demo`, `--check-config` and `simulate`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
from collections.abc import Sequence

from exporter import __version__

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliyun-vpn-exporter",
        description="Prometheus exporter for Alibaba Cloud VPN gateway quick diagnoses. "
        "Run 'aliyun-vpn-exporter simulate --help' for the API simulator.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config.file", dest="config_file", metavar="FILE", help="YAML config")
    source.add_argument(
        "--demo",
        action="store_true",
        help="run against the built-in API simulator and its demo fleet (no cloud account)",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=":9747",
        metavar="ADDR",
        help="address of /metrics, /healthz, /readyz and the status page (default :9747)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth of the metrics listener (exporter-toolkit format)",
    )
    parser.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="serve POST /-/reload on the metrics listener (as Prometheus does); SIGHUP "
        "always reloads, and so does /-/reload on the admin listener when it is enabled",
    )
    parser.add_argument(
        "--admin.listen-address",
        dest="admin_listen_address",
        default="127.0.0.1:9748",
        metavar="ADDR",
        help="address of the admin API, when enabled in the config (default 127.0.0.1:9748)",
    )
    parser.add_argument(
        "--admin.web.config.file",
        dest="admin_web_config_file",
        metavar="FILE",
        help="TLS and authentication of the admin API (required when it is enabled)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"]
    )
    parser.add_argument(
        "--shard",
        dest="shard",
        metavar="N|auto",
        help="this process's shard, 0-based; auto: the ordinal of the StatefulSet pod name "
        "in POD_NAME or HOSTNAME (needs --total-shards)",
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        metavar="N",
        help="number of shards: each polls the gateways whose ID hashes to its index, "
        "with 1/N of every API budget (default 1: no sharding)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate --config.file, print what is wrong and exit 0 (valid) or 1",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"aliyun-vpn-exporter {__version__} (python {platform.python_version()})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aliyun-vpn-exporter` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulate"]:
        from exporter.simulator.cli import main as simulate

        return simulate(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)

    from exporter.collect.sharding import ShardError, shard_from_flags
    from exporter.config.loader import check_config

    try:
        args.sharding = shard_from_flags(args.shard, args.total_shards)
    except ShardError as error:
        parser.error(str(error))

    if args.check_config:
        if not args.config_file:
            parser.error("--check-config needs --config.file")
        code, report = check_config(args.config_file)
        print(report)
        return code
    if not args.config_file and not args.demo:
        parser.error("give --config.file=FILE, or --demo to try it without a cloud account")

    from exporter.logs import setup_logging
    from exporter.run import run

    setup_logging(args.log_level, args.log_format)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
