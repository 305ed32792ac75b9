"""Restarts keep the truth: the latest-known state is saved to the state file and served
again at start, before the first cycle, with its original timestamps (DESIGN "Failure
semantics", issue 11 point 1a). A whole exporter against the simulator over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter.app import Exporter, ListenSettings
from exporter.config.model import Config
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import demo_scenario
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from tests.exporter_rig import Running, config, polled_once, running, samples, until

DATA_FAMILIES = (
    "aliyun_vpn_diagnose_item_status",
    "aliyun_vpn_quota_used",
    "aliyun_vpn_probe_reachable",
    "aliyun_vpn_connection_ipsec_status",
    "aliyun_vpn_gateway_info",
    "aliyun_vpn_poll_last_success_timestamp_seconds",
    "aliyun_vpn_diagnose_finish_timestamp_seconds",
)


def data(text: str) -> set[str]:
    """Every data sample line, values included."""
    return {
        line
        for line in text.splitlines()
        for family in DATA_FAMILIES
        if line.startswith(family + "{")
    }


def restored(text: str) -> bool:
    return any(
        line.startswith("aliyun_vpn_state_restored_timestamp_seconds ")
        for line in text.splitlines()
    )


def discovering(state: Path, **state_settings: str) -> object:
    def make(endpoint: str) -> Config:
        return config(
            endpoint,
            [{"region_id": "cn-hangzhou", "discover": {}}],
            poll={"interval": "5s"},
            state={"path": str(state), **state_settings},
        )

    return make


async def fully_known(run: Running) -> None:
    await polled_once(run)
    await until(
        lambda: (
            len(run.samples("aliyun_vpn_connection_info")) >= 3
            and len(run.samples("aliyun_vpn_gateway_info")) >= 3
        ),
        "connections and gateway info listed",
    )


async def test_a_restarted_exporter_serves_what_it_knew_before_its_first_poll(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, discovering(state)) as run:  # type: ignore[arg-type]
        await fully_known(run)
        # Stop polling, then read: nothing changes between this read and the save.
        await run.exporter.stop_polling()
        known = data(run.text())
        effective = run.value(
            "aliyun_vpn_poll_effective_interval_seconds", target="default/cn-hangzhou"
        )
    assert state.exists(), "saved at shutdown"
    assert any("vpn-hz1healthy" in line for line in known)

    # The API is down for the restarted exporter: only the state file can tell.
    simulator.faults.add(Fault.error("InvalidAccessKeyId.NotFound", status=404))
    make = discovering(state)
    async with running(simulator, make) as rerun:  # type: ignore[arg-type]
        text = await rerun.scrape()
        assert data(text) == known, "restored with the original timestamps"
        assert restored(text)
        assert samples(text, "aliyun_vpn_poll_effective_interval_seconds")[0][1] == effective
        await until(
            lambda: all(value == 0 for _, value in rerun.samples("aliyun_vpn_poll_success")),
            "the restarted exporter's polls failing",
            timeout=20,
        )
        assert data(await rerun.scrape()) == known, "the failing polls keep it"


async def test_the_state_is_restored_before_the_first_cycle(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, discovering(state)) as run:  # type: ignore[arg-type]
        await fully_known(run)
        await run.exporter.stop_polling()
        known = data(run.text())
    exporter = Exporter(
        discovering(state)("http://127.0.0.1:9"),  # type: ignore[operator]
        listen=ListenSettings(address="127.0.0.1:0"),
        metrics=SelfMetrics(),
    )
    assert data(b"".join(exporter.exposition.chunks()).decode()) == known


async def test_the_state_is_saved_periodically_while_running(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    simulator = Simulator(demo_scenario(), throttling=False)
    async with running(simulator, discovering(state, interval="1s")) as run:  # type: ignore[arg-type]
        await polled_once(run)
        await until(state.exists, "the state saved while running")


@pytest.mark.parametrize(
    "content", [b'{"format": "aliyun-vpn-exporter-state", "version": 7}', b"\x00garbage"]
)
async def test_an_unusable_state_file_is_logged_and_ignored(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    simulator = Simulator(demo_scenario(), throttling=False)
    with caplog.at_level(logging.WARNING):
        async with running(simulator, discovering(state)) as run:  # type: ignore[arg-type]
            await polled_once(run)
            text = await run.scrape()
            assert not restored(text)
            assert samples(text, "aliyun_vpn_quota_used")
    assert any("ignoring the state file" in r.getMessage() for r in caplog.records)
