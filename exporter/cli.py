"""Command line: Prometheus-style flags, `--demo`, `--check-config`, and subcommands.

A subcommand is one entry of `SUBCOMMANDS`: its name, a line for `--help`, and the module
whose `main(argv) -> int` runs it (imported only when it is used). Every bad flag value is
one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from exporter import __version__

PROG = "aliyun-vpn-exporter"
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")


@dataclass(frozen=True, slots=True)
class Subcommand:
    """`aliyun-vpn-exporter NAME ...`: runs `module.main(argv)` with the arguments after NAME."""

    name: str
    summary: str
    module: str


SUBCOMMANDS = (
    Subcommand(
        "simulate",
        "run the API simulator alone (benchmarks, manual tests, the official SDK)",
        "exporter.simulator.cli",
    ),
    Subcommand(
        "capture",
        "fetch the latest diagnosis of gateways once, redacted, to report an API shape",
        "exporter.capture.command",
    ),
    Subcommand(
        "healthcheck",
        "exit 0 if a running exporter's health listener says it is alive (--ready: ready)",
        "exporter.web.healthcheck",
    ),
)

ENVIRONMENT_HELP = """\
environment:
  ALIYUN_VPN_EXPORTER_<KEY>__<KEY>...   override a config key, steps joined by '__'
                                        (list items by index), e.g.
                                        ALIYUN_VPN_EXPORTER_POLL__INTERVAL=1m
                                        ALIYUN_VPN_EXPORTER_TARGETS__0__INTERVAL=30s
  ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET
                                        credentials of the default profile (the official
                                        chain also reads RRSA, the aliyun CLI profile,
                                        ~/.alibabacloud/credentials.ini, the ECS RAM role)
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _checked(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse `type` that keeps the text but refuses it when `check` raises ValueError."""

    def convert(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return convert


def _listen_address(text: str) -> str:
    from exporter.web.listener import parse_listen_address

    return _checked(parse_listen_address)(text)


def _level(text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r}: use debug, info, warn (or warning) or error"
        )
    return level


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    names = "|".join(command.name for command in SUBCOMMANDS)
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} (--config.file=FILE | --demo) [flags]\n"
        f"       {PROG} --config.file=FILE --check-config [flags]\n"
        f"       {PROG} {{{names}}} [flags]   (see {PROG} SUBCOMMAND --help)",
        description="Prometheus exporter for Alibaba Cloud VPN gateway quick diagnoses.",
        epilog="subcommands:\n"
        + "".join(f"  {c.name:<38}{c.summary}\n" for c in SUBCOMMANDS)
        + "\n"
        + ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        type=_listen_address,
        metavar="ADDR",
        help="[host]:port of /metrics, /healthz, /readyz and the status page (default :9747)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth of the metrics listener (exporter-toolkit format)",
    )
    parser.add_argument(
        "--web.health-listen-address",
        dest="health_listen_address",
        type=_listen_address,
        metavar="ADDR",
        help="also serve /healthz and /readyz in plain HTTP without authentication on this "
        "loopback address, for the healthcheck subcommand (default: off)",
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
        type=_listen_address,
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
        type=_level,
        metavar="LEVEL",
        help="debug, info, warn or error: the exporter's own messages (default info)",
    )
    parser.add_argument(
        "--log.library-level",
        dest="log_library_level",
        default="warn",
        type=_level,
        metavar="LEVEL",
        help="the same for third-party libraries (uvicorn, APScheduler, httpx...; default warn)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=["logfmt", "json"],
        help="logfmt or json, one line per event (default logfmt)",
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
        type=_positive_int,
        metavar="N",
        help="number of shards: each polls the gateways whose ID hashes to its index, "
        "with 1/N of every API budget (default 1: no sharding)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check --config.file and the web config files as a start would, print every "
        "problem, exit 0 (valid) or 1",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {__version__} (python {platform.python_version()})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aliyun-vpn-exporter` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    for command in SUBCOMMANDS:
        if args_list[:1] == [command.name]:
            run_subcommand: Callable[[list[str]], int] = importlib.import_module(
                command.module
            ).main
            return run_subcommand(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)

    from exporter.collect.sharding import ShardError, shard_from_flags

    try:
        args.sharding = shard_from_flags(args.shard, args.total_shards)
    except ShardError as error:
        parser.error(str(error))

    if args.check_config:
        if not args.config_file:
            parser.error("--check-config needs --config.file")
        from exporter.process.run import check

        code, report = check(args)
        print(report)
        return code
    if not args.config_file and not args.demo:
        parser.error("give --config.file=FILE, or --demo to try it without a cloud account")

    from exporter.logs import setup_logging
    from exporter.process.run import run

    setup_logging(args.log_level, args.log_format, library_level=args.log_library_level)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
