"""schemathesis against the metrics listener: `/metrics`, `/healthz`, `/readyz`, `/` and
`/-/reload`, as `tests/fixtures/metrics-listener.openapi.yaml` describes them.

The real exporter serves them (behind basic auth, with response headers, the lifecycle
endpoint on) against the simulator; schemathesis runs in another process with every check
on, and no answer may be a 5xx or differ from the document (status, content type, headers).
The admin listener has its own run in `test_admin_openapi.py`.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.app import Exporter, ListenSettings
from exporter.config.loader import load_config
from exporter.exposition.render import FAMILIES, Exposition
from exporter.process.reload import Reloader
from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.metrics_app import MetricsEndpoint
from exporter.web.web_config import WebConfig
from tests.admin_harness import PASSWORD, PASSWORD_HASH, USER
from tests.fault_matrix import config_data, scenario_data
from tests.schemathesis_run import run_schemathesis

DOCUMENT = Path(__file__).parent / "fixtures" / "metrics-listener.openapi.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The metrics listener's port; the exporter runs in a thread's event loop."""
    directory = tmp_path_factory.mktemp("metrics-openapi")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="metrics-listener", daemon=True)
    thread.start()
    simulator = Simulator(Scenario.model_validate(scenario_data()), throttling=False)
    server = SimulatorServer(simulator)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    config_file = directory / "config.yml"
    config_file.write_text(yaml.safe_dump(config_data(server.url, "1h")))
    metrics = SelfMetrics()
    reloader = Reloader(lambda: load_config(config_file), metrics)
    web = WebConfig.model_validate(
        {
            "basic_auth_users": {USER: PASSWORD_HASH},
            "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}},
        }
    )

    async def start() -> Exporter:
        exporter = Exporter(
            load_config(config_file),
            listen=ListenSettings(
                address="127.0.0.1:0", web_config=web, lifecycle=reloader.endpoint("metrics")
            ),
            metrics=metrics,
        )
        reloader.bind(exporter)
        await exporter.start()
        return exporter

    exporter = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield exporter.listener.port
    finally:
        asyncio.run_coroutine_threadsafe(exporter.stop(), loop).result(30)
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_the_document_describes_every_endpoint_the_listener_answers(served: int) -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    assert set(document["paths"]) == {"/metrics", "/healthz", "/readyz", "/", "/-/reload"}
    auth = (USER, PASSWORD)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answer = httpx.request(method, f"http://127.0.0.1:{served}{path}", auth=auth)
            assert str(answer.status_code) in operation["responses"], (method, path)
    unknown = httpx.get(f"http://127.0.0.1:{served}/nothing-here", auth=auth)
    assert unknown.status_code == 404


def test_schemathesis_finds_no_server_error_nor_schema_violation(
    served: int, tmp_path: Path
) -> None:
    run_schemathesis(
        str(DOCUMENT),
        auth=(USER, PASSWORD),
        max_examples=25,
        workdir=tmp_path,
        extra=("--url", f"http://127.0.0.1:{served}"),
    )


def _body(endpoint: MetricsEndpoint, *, gzip: bool) -> bytes:
    _, length, chunks = endpoint.body(openmetrics=False, gzip=gzip)
    body = b"".join(chunks)
    assert len(body) == length
    return zlib.decompress(body, wbits=31) if gzip else body


def test_gzip_and_plain_bodies_follow_every_change_of_the_exposition() -> None:
    exposition = Exposition()
    endpoint = MetricsEndpoint(exposition, SelfMetrics())
    empty = (b"",) * (len(FAMILIES) - 1)
    for value in range(3):
        line = f'aliyun_vpn_diagnose_item_status{{owner="a"}} {value}\n'.encode()
        exposition.put("a", (line, *empty))
        plain = _body(endpoint, gzip=False)
        assert line in plain
        assert (
            _body(endpoint, gzip=True).split(b"# HELP aliyun_vpn_api_")[0]
            == plain.split(b"# HELP aliyun_vpn_api_")[0]
        )
