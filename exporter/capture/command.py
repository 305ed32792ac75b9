"""`aliyun-vpn-exporter capture`: fetch the latest diagnosis of named gateways once, with
the normal config and credentials, and write it redacted for an issue ("Report an API
shape" in the README).

Each gateway is read with one GetVpnGatewayDiagnoseResult call (retried as the exporter
retries). A gateway listed by a target uses that target's region and credentials; another
one (found by discovery) needs `--region-id`, and uses the first target of that region.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter import __version__
from exporter.capture.redact import Redactor
from exporter.capture.report import Captured, document, dumps
from exporter.cloud.client import VpcClient, make_http_client
from exporter.cloud.credentials import build_providers
from exporter.cloud.errors import ApiError, CloudError
from exporter.cloud.keys import CredentialsProvider
from exporter.cloud.retry import RetryPolicy
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.config.values import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A gateway to capture and where to ask about it."""

    vpn_gateway_id: str
    target: str
    region_id: str
    profile: str


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliyun-vpn-exporter capture",
        description="Fetch the latest diagnosis of the named gateways once and write the raw "
        "answers, with IP addresses, account and resource IDs replaced by placeholders, next "
        "to what the exporter read from each item and every shape it did not expect. Attach "
        "the file to an issue (README: 'Report an API shape').",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config.file", dest="config_file", metavar="FILE", help="YAML config")
    source.add_argument(
        "--demo", action="store_true", help="capture from the built-in simulator's demo fleet"
    )
    parser.add_argument(
        "--gateway",
        dest="gateways",
        action="append",
        default=[],
        metavar="VPN_GATEWAY_ID",
        help="a gateway to capture (repeat for more; default: every gateway the config lists)",
    )
    parser.add_argument(
        "--region-id",
        metavar="REGION",
        help="the region of gateways no target lists (discovered ones)",
    )
    parser.add_argument(
        "--output", metavar="FILE", default="-", help="where to write the capture (default: stdout)"
    )
    return parser


def wanted_gateways(config: Config, gateways: Sequence[str], region_id: str | None) -> list[Wanted]:
    """Where to ask about each gateway; raises ValueError naming a gateway it cannot place."""
    listed = {
        gateway: Wanted(gateway, target.name, target.region_id, target.credentials)
        for target in config.targets
        for gateway in target.gateways
    }
    if not gateways:
        if not listed:
            raise ValueError("the config lists no gateway: name some with --gateway")
        return list(listed.values())
    wanted = []
    for gateway in dict.fromkeys(gateways):
        if gateway in listed:
            wanted.append(listed[gateway])
            continue
        target = next((t for t in config.targets if t.region_id == region_id), None)
        if target is None:
            raise ValueError(
                f"no target lists {gateway}: give --region-id with the region of a target"
            )
        wanted.append(Wanted(gateway, target.name, target.region_id, target.credentials))
    return wanted


async def _secrets(providers: dict[str, CredentialsProvider], profiles: set[str]) -> list[str]:
    """The credentials in use, so that the redaction removes them wherever they appear."""
    found: list[str] = []
    for profile in profiles:
        with contextlib.suppress(Exception):  # a failing profile fails its captures instead
            credential = await providers[profile].get()
            found += [credential.access_key_id, credential.access_key_secret]
            found += [credential.security_token] if credential.security_token else []
    return found


async def capture(config: Config, wanted: Sequence[Wanted]) -> str:
    """The capture file's text for `wanted`, fetched through `config`'s API settings."""
    providers = build_providers(config)
    api = config.api
    http = make_http_client(
        timeout=api.timeout,
        proxy=api.proxy.get_secret_value() if api.proxy else None,
        ca_file=str(api.ca_file) if api.ca_file else None,
    )
    clients: dict[tuple[str, str], VpcClient] = {}
    captured: list[Captured] = []
    try:
        redactor = Redactor(await _secrets(providers, {w.profile for w in wanted}))
        for gateway in wanted:
            key = (gateway.profile, gateway.region_id)
            if key not in clients:
                clients[key] = VpcClient(
                    http,
                    providers[gateway.profile],
                    gateway.region_id,
                    endpoint=api.endpoint,
                    retry=RetryPolicy(max_retries=api.max_retries),
                    timeout=api.timeout,
                    account=config.account_of(gateway.profile),
                )
            target = redactor.text(gateway.target)
            gateway_id = redactor.text(gateway.vpn_gateway_id)
            try:
                answer = await clients[key].get_vpn_gateway_diagnose_result(
                    vpn_gateway_id=gateway.vpn_gateway_id
                )
            except ApiError as error:
                failure = {
                    "code": error.code if isinstance(error, CloudError) else error.metric_code,
                    "status": error.status,
                    "message": redactor.text(error.message),
                }
                captured.append(Captured(target, gateway.region_id, gateway_id, error=failure))
                continue
            response = redactor.value(answer)
            captured.append(Captured(target, gateway.region_id, gateway_id, response=response))
    finally:
        await http.aclose()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return dumps(document(captured, version=__version__, captured_at=stamp))


@contextlib.asynccontextmanager
async def _config(args: argparse.Namespace) -> AsyncIterator[Config]:
    if args.demo:
        from exporter.demo import demo_config, running_demo_simulator

        async with running_demo_simulator() as endpoint:
            yield demo_config(endpoint)
    else:
        yield load_config(args.config_file)


async def _run(args: argparse.Namespace) -> str:
    async with _config(args) as config:
        wanted = wanted_gateways(config, args.gateways, args.region_id)
        return await capture(config, wanted)


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        text = asyncio.run(_run(args))
    except (ConfigError, ValueError) as error:
        print(f"aliyun-vpn-exporter capture: {error}", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(
            f"wrote {args.output}: attach it to an issue (it holds no secret, IP "
            "address, account or resource ID; check before you post)",
            file=sys.stderr,
        )
    return 0
