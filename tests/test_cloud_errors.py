"""What the cloud's error messages may carry to the log and the status page (issue 12,
defect 12): an endpoint that echoes the request back (a proxy, a misconfigured endpoint)
must not put a key ID, a signature or an Authorization header on the unauthenticated
status page, nor flood it with an unbounded message."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from exporter.app import Exporter, ListenSettings
from exporter.cloud.errors import MAX_MESSAGE
from exporter.simulator.faults import Fault
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.admin_harness import admin_config, routes_scenario
from tests.process_harness import BOUND

KEY_ID = "LTAI5tEchoedKeyId0123"
SIGNATURE = "6f1c0ffee0ddba11"
ECHO = (
    f"bad request: POST /?AccessKeyId={KEY_ID}&Signature={SIGNATURE}&Action=X "
    f"Authorization: ACS3-HMAC-SHA256 Credential={KEY_ID}/x,SignedHeaders=host,"
    f"Signature={SIGNATURE} " + "padding " * 400
)


async def test_defect_12_echoed_secrets_never_reach_the_status_page_or_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    simulator = Simulator(routes_scenario(), throttling=False)
    simulator.faults.add(
        Fault.error(
            "InvalidParameter", status=400, message=ECHO, action="GetVpnGatewayDiagnoseResult"
        )
    )
    async with SimulatorServer(simulator) as server:
        exporter = Exporter(
            admin_config(server.url, enabled=False),
            listen=ListenSettings(address="127.0.0.1:0"),
            metrics=SelfMetrics(),
        )
        await exporter.start()
        try:
            url = f"http://127.0.0.1:{exporter.listener.port}/"
            async with httpx.AsyncClient(timeout=BOUND) as http, asyncio.timeout(BOUND):
                while "[redacted]" not in (page := (await http.get(url)).text):
                    await asyncio.sleep(0.05)
        finally:
            await exporter.stop()
    logged = caplog.text + "".join(str(getattr(r, "fields", "")) for r in caplog.records)
    for text in (page, logged):
        assert KEY_ID not in text
        assert SIGNATURE not in text
        assert "padding " * (MAX_MESSAGE // 8 + 1) not in text
