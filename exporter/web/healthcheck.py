"""`aliyun-vpn-exporter healthcheck`: exit 0 when a running exporter is healthy (or ready).

It asks the exporter's health listener (`--web.health-listen-address`, loopback, plain
HTTP), which answers whatever the metrics listener's web config requires of clients (basic
auth, client certificates): the probe of the Dockerfile's HEALTHCHECK and of Kubernetes'
exec probes. Only the standard library is imported, so a probe costs little.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

DEFAULT_ADDRESS = "127.0.0.1:9746"
"""The health listener's address in the shipped deploy files."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliyun-vpn-exporter healthcheck",
        description="Ask a running exporter's health listener (--web.health-listen-address) "
        "whether it is alive (/healthz) or ready (/readyz); exit 0 if so, else 1.",
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=f"the exporter's --web.health-listen-address (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--ready", action="store_true", help="check readiness (/readyz) instead of liveness"
    )
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="default 5")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    host, _, port = args.address.rpartition(":")
    url = f"http://{host or '127.0.0.1'}:{port}/{'readyz' if args.ready else 'healthz'}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            detail = response.read().decode("utf-8", "replace").strip()
            print(f"{url}: {response.status} {detail}")
            return 0
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace").strip()
        print(f"{url}: {error.code} {detail}", file=sys.stderr)
    except (OSError, ValueError) as error:
        print(f"{url}: {getattr(error, 'reason', None) or error}", file=sys.stderr)
    return 1
