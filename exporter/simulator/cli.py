"""`aliyun-vpn-exporter simulate`: the simulator alone, for benchmarks and manual tests.

Point the official SDK (or the exporter's `api.endpoint`) at the printed address with the
demo key pair, or with the pair given on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from pydantic import SecretStr

from exporter.logs import setup_logging
from exporter.simulator.generator import generated_scenario
from exporter.simulator.scenario import (
    DEMO_ACCESS_KEY_ID,
    DEMO_ACCESS_KEY_SECRET,
    KeyPair,
    Scenario,
    ScenarioError,
    demo_scenario,
    load_scenario,
)
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator

log = logging.getLogger("exporter.simulator")

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9749"
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliyun-vpn-exporter simulate",
        description="Serve a simulated Alibaba Cloud VPC API (VPN gateway diagnoses).",
    )
    parser.add_argument(
        "--listen-address",
        default=DEFAULT_LISTEN_ADDRESS,
        help=f"host:port (default {DEFAULT_LISTEN_ADDRESS}; ':PORT' listens on every interface)",
    )
    fleet = parser.add_mutually_exclusive_group()
    fleet.add_argument(
        "--scenario", metavar="FILE", help="a YAML scenario (default: the demo fleet)"
    )
    fleet.add_argument("--gateways", type=int, metavar="N", help="serve N generated gateways")
    parser.add_argument(
        "--regions",
        default="cn-hangzhou",
        help="comma-separated regions of generated gateways (with --gateways)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of generated gateways")
    parser.add_argument("--no-throttling", action="store_true", help="never answer Throttling.User")
    parser.add_argument(
        "--access-key-id",
        default=DEMO_ACCESS_KEY_ID,
        help="an access key the simulator accepts, besides the scenario's (default: the demo's)",
    )
    parser.add_argument("--access-key-secret", default=DEMO_ACCESS_KEY_SECRET, help="its secret")
    parser.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--log.format", dest="log_format", choices=("logfmt", "json"), default="logfmt"
    )
    return parser


def _scenario(args: argparse.Namespace) -> Scenario:
    if args.gateways is not None:
        if args.gateways < 0:
            raise ScenarioError("--gateways must not be negative")
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        if not regions:
            raise ScenarioError("--regions names no region")
        scenario = generated_scenario(args.gateways, regions, args.seed)
    elif args.scenario is not None:
        scenario = load_scenario(args.scenario)
    else:
        scenario = demo_scenario()
    pair = KeyPair(
        access_key_id=args.access_key_id, access_key_secret=SecretStr(args.access_key_secret)
    )
    others = [k for k in scenario.key_pairs if k.access_key_id != pair.access_key_id]
    return scenario.model_copy(update={"key_pairs": [*others, pair]})


def _listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen-address {value!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _serve(simulator: Simulator, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SimulatorServer(simulator, host, port) as server:
        regions = ", ".join(simulator.fleet.regions()) or "no regions"
        log.info(
            "simulator listening on %s: %d gateways in %s; throttling %s",
            server.url,
            len(simulator.fleet),
            regions,
            "on" if simulator.rate_limiter else "off",
        )
        await stop.wait()
    log.info("simulator stopped")


def main(argv: list[str]) -> int:
    """Run the simulator until SIGINT/SIGTERM; 1 when the scenario or address is bad."""
    args = _parser().parse_args(argv)
    try:
        host, port = _listen_address(args.listen_address)
        simulator = Simulator(_scenario(args), throttling=not args.no_throttling)
    except ValueError as exc:  # ScenarioError included
        print(f"aliyun-vpn-exporter simulate: {exc}", file=sys.stderr)
        return 1
    setup_logging(args.log_level, args.log_format)
    try:
        asyncio.run(_serve(simulator, host, port))
    except OSError as exc:
        print(f"aliyun-vpn-exporter simulate: {exc}", file=sys.stderr)
        return 1
    return 0
