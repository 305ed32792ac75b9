"""`aliyun-vpn-exporter capture` against the simulator over real HTTP: the raw answers,
redacted, next to what the parser read; no secret, IP address or real ID survives, whatever
form the descriptions take (every `bad_description` mode)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exporter.capture.command import capture, wanted_gateways
from exporter.capture.report import read_items
from exporter.config.model import Config
from exporter.simulator.faults import DescriptionMode, Fault
from exporter.simulator.scenario import Scenario, demo_scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from tests.exporter_rig import DEMO_KEYS

ACTION = "GetVpnGatewayDiagnoseResult"
STS_ID, STS_SECRET, STS_TOKEN = "STS.capturekey", "sts-capture-secret", "sts-capture-token-xyz"
ACCOUNT = "1234567890123456"
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")


def real_values(scenario: Scenario) -> set[str]:
    """Every IP address and resource ID of the scenario's fleet."""
    found: set[str] = set()
    for gateway in scenario.gateways:
        found |= {gateway.id, gateway.vpc_id, gateway.internet_ip}
        for connection in gateway.connections:
            found |= {
                connection.id,
                connection.customer_gateway_ip,
                connection.local_ip,
                connection.remote_ip,
                connection.transit_router_id or gateway.id,
            }
    return found


def config(endpoint: str, scenario: Scenario) -> Config:
    regions: dict[str, list[str]] = {}
    for gateway in scenario.gateways:
        regions.setdefault(gateway.region_id, []).append(gateway.id)
    return Config.model_validate(
        {
            "credentials": {
                "default": DEMO_KEYS,
                "sts": {
                    "source": "access_key",
                    "access_key_id": STS_ID,
                    "access_key_secret": STS_SECRET,
                    "security_token": STS_TOKEN,
                },
            },
            "api": {"endpoint": endpoint, "timeout": "5s", "max_retries": 1},
            "targets": [
                {"region_id": region, "gateways": gateways, "credentials": "sts"}
                for region, gateways in regions.items()
            ],
        }
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Simulator, Config]]:
    simulator = Simulator(demo_scenario(), throttling=False)
    simulator.add_key_pair(STS_ID, STS_SECRET, security_token=STS_TOKEN, account_id=ACCOUNT)
    async with SimulatorServer(simulator) as server:
        yield simulator, config(server.url, simulator.scenario)


def assert_nothing_identifying(text: str, scenario: Scenario) -> None:
    for secret in (STS_ID, STS_SECRET, STS_TOKEN, ACCOUNT, "127.0.0.1"):
        assert secret not in text
    leaked = sorted(value for value in real_values(scenario) if value in text)
    assert not leaked
    assert not IPV4.findall(text)
    assert not re.findall(
        r"(?<![\w-])(?:vpn|vco|vpndgn|tr|tun|cgw|vpc)-(?!redacted)[0-9a-z]+", text
    )


async def capture_all(simulator: Simulator, cfg: Config) -> dict[str, Any]:
    text = await capture(cfg, wanted_gateways(cfg, [], None))
    assert_nothing_identifying(text, simulator.scenario)
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.mark.parametrize("mode", [None, *DescriptionMode])
async def test_capture_of_every_demo_gateway_redacts_every_description_form(
    served: tuple[Simulator, Config], mode: DescriptionMode | None
) -> None:
    simulator, cfg = served
    if mode is not None:
        simulator.faults.add(Fault.bad_description(mode, action=ACTION))
    document = await capture_all(simulator, cfg)

    assert document["format"] == "aliyun-vpn-exporter capture 1"
    gateways = document["gateways"]
    assert len(gateways) == len(simulator.scenario.gateways)
    answered = [g for g in gateways if "response" in g]
    # vpn-hz4nodiag has no diagnosis: the API's error is captured instead
    (nodiag,) = [g for g in gateways if "error" in g]
    assert nodiag["error"]["code"] == "InvalidVpnGatewayId.NotFound"
    assert len({g["vpn_gateway_id"] for g in gateways}) == len(gateways), "stable placeholders"
    for gateway in answered:
        # what the file says the parser read is what parsing the attached answer gives
        assert gateway["parsed"] == read_items(gateway["response"])
        assert gateway["response"]["VpnGatewayId"] == gateway["vpn_gateway_id"]
        items = gateway["parsed"]["items"]
        assert len(items) == 7
        drift = {d for item in items for d in item["drift"]}
        errors = [item["parse_error"] for item in items if item["parse_error"]]
        if mode is None:
            assert (drift, errors) == (set(), [])
        elif mode is DescriptionMode.NUMBERS_AS_STRINGS:
            assert "number_as_string(quantity,used)" in drift and not errors
        elif mode is DescriptionMode.DOUBLY_ENCODED:
            assert drift == {"double_encoded"} and not errors
        elif mode is DescriptionMode.NOT_A_STRING:
            assert drift == {"not_a_string"} and not errors
        elif mode is DescriptionMode.GARBAGE:
            assert len(errors) == 7 and not drift


async def test_an_error_message_with_an_account_id_is_redacted(
    served: tuple[Simulator, Config],
) -> None:
    simulator, cfg = served
    message = f"not allowed: acs:ram::{ACCOUNT}:role/vpn on vpn-hz1healthy from 203.0.113.11"
    simulator.faults.add(Fault(kind="error", code="Forbidden.RAM", status=403, message=message))
    document = await capture_all(simulator, cfg)
    errors = [g["error"] for g in document["gateways"]]
    assert all(e["code"] == "Forbidden.RAM" and e["status"] == 403 for e in errors)
    assert "acs:ram::0000000000000001:role/vpn on vpn-redacted" in errors[0]["message"]


async def test_a_gateway_no_target_lists_needs_its_region(served: tuple[Simulator, Config]) -> None:
    _, cfg = served
    with pytest.raises(ValueError, match="--region-id"):
        wanted_gateways(cfg, ["vpn-discovered1"], None)
    (wanted,) = wanted_gateways(cfg, ["vpn-discovered1"], "cn-hangzhou")
    assert (wanted.region_id, wanted.profile) == ("cn-hangzhou", "sts")
    discovering = cfg.model_copy(
        update={"targets": [t.model_copy(update={"gateways": ()}) for t in cfg.targets]}
    )
    with pytest.raises(ValueError, match="--gateway"):
        wanted_gateways(discovering, [], None)


def test_capture_subcommand_says_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "credentials: {default: {source: access_key, access_key_id: a, access_key_secret: b}}\n"
        "targets: [{region_id: cn-hangzhou, gateways: [vpn-listed1]}]\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "capture",
            f"--config.file={config_file}",
            "--gateway=vpn-elsewhere1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert "no target lists vpn-elsewhere1: give --region-id" in done.stderr


def test_capture_subcommand_writes_a_redacted_file_for_a_demo_gateway(tmp_path: Path) -> None:
    output = tmp_path / "capture.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "capture",
            "--demo",
            "--gateway",
            "vpn-sg1inconsistent",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "attach it to an issue" in done.stderr
    text = output.read_text()
    assert_nothing_identifying(text, demo_scenario())
    (gateway,) = json.loads(text)["gateways"]
    consistency = next(
        item for item in gateway["parsed"]["items"] if item["name"] == "VcoConfigConsistency"
    )
    assert consistency["reading"] == {
        "type": "ConsistencyReading",
        "consistent": False,
        "diff_entries": 3,
        "peer_available": True,
    }
