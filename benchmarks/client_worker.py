"""Child: one client making GetVpnGatewayDiagnoseResult calls against the simulator.

`python -m benchmarks.client_worker --client ours|sdk --port P --concurrency C --calls N`

- `ours`: the exporter's `VpcClient` on its shared `httpx` client (`make_http_client`:
  the `httpx-aiohttp` transport), V3-signed by `AcsV3Auth`, with a budget too large to
  ever wait (no rate limit);
- `sdk`: the official SDK's async client (`alibabacloud-vpc20160428`), one instance reused.

Both decode every `DiagnoseResultDescription` with `json.loads`. `C` tasks share the
calls; the first `--warmup` calls open connections and fill caches and are not measured.
Prints one JSON line: calls, errors, CPU seconds of this process (`time.process_time`)
and wall seconds over the measured calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator

from exporter.simulator.generator import expand, generated_scenario
from exporter.simulator.scenario import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET

REGION = "cn-hangzhou"
Call = Callable[[str], Awaitable[int]]


def diagnosed_gateways(gateways: int) -> list[str]:
    """IDs of the simulator's generated gateways that have a diagnosis (the same seed)."""
    spec = generated_scenario(gateways, [REGION]).generate
    assert spec is not None
    return [gateway.id for gateway in expand(spec) if gateway.has_diagnosis]


async def ours(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from exporter.cloud.client import VpcClient, make_http_client
    from exporter.cloud.credentials import StaticCredentialsProvider
    from exporter.cloud.keys import Credential
    from exporter.cloud.ratelimit import RateBudgets

    http = make_http_client()
    client = VpcClient(
        http,
        StaticCredentialsProvider(
            "default", Credential(DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET)
        ),
        REGION,
        endpoint=f"http://127.0.0.1:{port}",
        budgets=RateBudgets({"GetVpnGatewayDiagnoseResult": (1e9, 1.0)}),
    )

    async def call(gateway_id: str) -> int:
        payload = await client.get_vpn_gateway_diagnose_result(vpn_gateway_id=gateway_id)
        for item in payload.get("DiagnoseResult") or []:
            json.loads(item["DiagnoseResultDescription"])
        return len(payload.get("DiagnoseResult") or [])

    return call, http.aclose


async def sdk(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from alibabacloud_tea_openapi.models import Config  # type: ignore[import-untyped]
    from alibabacloud_vpc20160428 import models  # type: ignore[import-untyped]
    from alibabacloud_vpc20160428.client import Client  # type: ignore[import-untyped]

    client = Client(
        Config(
            access_key_id=DEMO_ACCESS_KEY_ID,
            access_key_secret=DEMO_ACCESS_KEY_SECRET,
            region_id=REGION,
            endpoint=f"127.0.0.1:{port}",
            protocol="http",
        )
    )

    async def call(gateway_id: str) -> int:
        request = models.GetVpnGatewayDiagnoseResultRequest(
            region_id=REGION, vpn_gateway_id=gateway_id
        )
        response = await client.get_vpn_gateway_diagnose_result_async(request)
        results = response.body.diagnose_result or []
        for item in results:
            json.loads(item.diagnose_result_description)
        return len(results)

    async def close() -> None:
        return None

    return call, close


async def run(args: argparse.Namespace) -> dict[str, float]:
    call, close = await (ours if args.client == "ours" else sdk)(args.port)
    gateways = diagnosed_gateways(args.gateways)

    def ids(count: int, start: int) -> Iterator[str]:
        return (gateways[(start + i) % len(gateways)] for i in range(count))

    errors = 0
    items = 0

    async def worker(queue: Iterator[str]) -> None:
        nonlocal errors, items
        for gateway_id in queue:
            try:
                items += await call(gateway_id)
            except Exception:
                errors += 1

    async def batch(count: int, start: int) -> None:
        queue = ids(count, start)  # one shared iterator: each call is taken once
        await asyncio.gather(*(worker(queue) for _ in range(args.concurrency)))

    await batch(args.warmup, 0)
    errors = items = 0
    wall = time.perf_counter()
    cpu = time.process_time()
    await batch(args.calls, args.warmup)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    await close()
    return {"calls": args.calls, "errors": errors, "items": items, "cpu": cpu, "wall": wall}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=["ours", "sdk"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--gateways", type=int, default=1000)
    print("RESULT " + json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)
