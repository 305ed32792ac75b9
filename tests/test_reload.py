"""Reloading the configuration (SIGHUP, `POST /-/reload`) and shutting down (SIGTERM).

In-process tests drive `Exporter.reconfigure` through a `Reloader` and the lifecycle
endpoint over real HTTP; process tests send real signals to the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.app import Exporter, ListenSettings
from exporter.config.loader import load_config
from exporter.config.model import Config
from exporter.process import reload as reload_module
from exporter.process.reload import Reloader
from exporter.simulator.clock import ManualClock
from exporter.simulator.faults import Fault
from exporter.simulator.scenario import Scenario
from exporter.simulator.server import SimulatorServer
from exporter.simulator.simulator import Simulator
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.web_config import WebConfig
from tests.admin_harness import CONNECTION, PASSWORD, PASSWORD_HASH, ROUTE, USER, basic_auth
from tests.fakes import FakeClock
from tests.fault_matrix import (
    HZ,
    SG,
    config_data,
    gateway_lines,
    poll_success,
    scenario_data,
)
from tests.process_harness import (
    BOUND,
    config_document,
    exporter_process,
    simulator_thread,
    value,
    write_yaml,
)

HZ_A = ["vpn-hz1healthy", "vpn-hz2quota"]
HZ_B = ["vpn-hz2quota", "vpn-hz3unreachable"]


def document(endpoint: str, hz: list[str], *, sg: bool = True) -> dict[str, Any]:
    data = config_data(endpoint, "1h")
    data["targets"][0]["gateways"] = hz
    if not sg:
        data["targets"] = data["targets"][:1]
    return data


@dataclass
class Rig:
    simulator: Simulator
    exporter: Exporter
    reloader: Reloader
    config_file: Path
    endpoint: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.listener.port}"

    def write(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else yaml.safe_dump(data)
        self.config_file.write_text(text)

    async def scrape(self) -> str:
        async with httpx.AsyncClient(timeout=BOUND) as http:
            response = await http.get(f"{self.url}/metrics")
        response.raise_for_status()
        return response.text

    async def settled(self) -> None:
        """Every polled gateway has been polled (the first cycle after a start or reload)."""
        deadline = time.monotonic() + BOUND
        while not all(r.last_poll for r in self.exporter.fleet.records.values()):
            assert time.monotonic() < deadline, "not every gateway was polled"
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, web_config: WebConfig | None = None) -> AsyncIterator[Rig]:
    simulator = Simulator(
        Scenario.model_validate(scenario_data()), clock=ManualClock(), throttling=False
    )
    async with SimulatorServer(simulator) as server:
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(document(server.url, HZ_A)))
        metrics = SelfMetrics()
        reloader = Reloader(lambda: load_config(config_file), metrics)
        exporter = Exporter(
            load_config(config_file),
            listen=ListenSettings(
                address="127.0.0.1:0",
                web_config=web_config,
                lifecycle=reloader.endpoint("metrics"),
            ),
            clock=FakeClock(time.time()),
            metrics=metrics,
        )
        reloader.bind(exporter)
        await exporter.start()
        try:
            running = Rig(simulator, exporter, reloader, config_file, server.url)
            await running.settled()
            yield running
        finally:
            await exporter.stop()


def polled(text: str) -> set[str]:
    return set(poll_success(text))


async def test_a_valid_config_swaps_gateways_and_keeps_the_data_of_those_that_stay(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as running:
        before = await running.scrape()
        assert polled(before) == {*HZ_A, "vpn-sg1inconsistent", "vpn-sg2lossy"}
        kept = gateway_lines(before, "vpn-hz2quota")
        running.write(document(running.endpoint, HZ_B))

        outcome = await running.reloader.reload("test")

        assert (outcome.success, outcome.changed) == (True, True)
        right_after = await running.scrape()
        assert "vpn-hz1healthy" not in right_after  # every series of a removed gateway went
        assert gateway_lines(right_after, "vpn-hz2quota") == kept  # no gap for one that stays
        await running.settled()
        after = await running.scrape()
        assert polled(after) == {*HZ_B, "vpn-sg1inconsistent", "vpn-sg2lossy"}
        assert poll_success(after)["vpn-hz3unreachable"] == 1
        assert value(after, "aliyun_vpn_config_last_reload_successful") == 1


async def test_the_listener_and_its_connections_survive_a_reload(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.exporter.listener.port)
        request = b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n"
        try:
            writer.write(request)
            assert (await reader.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
            running.write(document(running.endpoint, HZ_B))
            assert (await running.reloader.reload("test")).success
            writer.write(request)  # the same kept-alive connection
            assert (await reader.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()


async def test_a_removed_target_loses_every_series_including_its_own(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        assert f'target="{SG}"' in await running.scrape()
        running.write(document(running.endpoint, HZ_A, sg=False))

        assert (await running.reloader.reload("test")).success

        text = await running.scrape()
        assert f'target="{SG}"' not in text
        assert f'target="{HZ}"' in text
        assert "vpn-sg1inconsistent" not in text


async def test_an_invalid_config_keeps_the_running_one_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig(tmp_path) as running:
        loaded_at = value(
            await running.scrape(), "aliyun_vpn_config_last_reload_success_timestamp_seconds"
        )
        running.write(document(running.endpoint, HZ_A) | {"poll": {"interval": "soon"}})

        with caplog.at_level(logging.ERROR, logger="exporter.process.reload"):
            outcome = await running.reloader.reload("test")

        assert not outcome.success
        assert "poll.interval" in outcome.message
        assert any("poll.interval" in r.fields["error"] for r in caplog.records)  # type: ignore[attr-defined]
        text = await running.scrape()
        assert value(text, "aliyun_vpn_config_last_reload_successful") == 0
        assert value(text, "aliyun_vpn_config_last_reload_success_timestamp_seconds") == loaded_at
        assert polled(text) == {*HZ_A, "vpn-sg1inconsistent", "vpn-sg2lossy"}
        # The old configuration still polls.
        requests = len(running.simulator.requests)
        for plan in running.exporter.scheduler.plans:
            await running.exporter.scheduler.run_cycle(plan)
        deadline = time.monotonic() + BOUND
        while len(running.simulator.requests) < requests + 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)

        running.write(document(running.endpoint, HZ_A))
        assert (await running.reloader.reload("test")).success
        text = await running.scrape()
        assert value(text, "aliyun_vpn_config_last_reload_successful") == 1


async def test_an_unchanged_config_keeps_polling_as_it_was(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        scheduler = running.exporter.scheduler

        outcome = await running.reloader.reload("test")

        assert (outcome.success, outcome.changed) == (True, False)
        assert running.exporter.scheduler is scheduler


async def test_enabling_the_admin_api_needs_a_restart(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        running.write(document(running.endpoint, HZ_A) | {"admin": {"enabled": True}})

        outcome = await running.reloader.reload("test")

        assert not outcome.success
        assert "admin.enabled" in outcome.message
        assert not running.exporter.config.admin.enabled


async def test_parts_that_cannot_be_built_leave_the_running_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with rig(tmp_path) as running:
        scheduler, config = running.exporter.scheduler, running.exporter.config
        running.write(document(running.endpoint, HZ_B))

        def refuse(_: Config) -> dict[str, Any]:
            raise ValueError("no such credentials source")

        monkeypatch.setattr("exporter.app.build_providers", refuse)
        outcome = await running.reloader.reload("test")

        assert not outcome.success
        assert "no such credentials source" in outcome.message
        assert (running.exporter.scheduler, running.exporter.config) == (scheduler, config)
        assert running.exporter.scheduler.scheduler.running
        assert value(await running.scrape(), "aliyun_vpn_config_last_reload_successful") == 0


async def test_post_reload_answers_what_happened(tmp_path: Path) -> None:
    async with rig(tmp_path) as running, httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.get("/-/reload")).status_code == 405
        unchanged = await http.post("/-/reload")
        assert (unchanged.status_code, unchanged.text) == (200, "configuration unchanged\n")
        running.write(document(running.endpoint, HZ_B))
        reloaded = await http.put("/-/reload")
        assert (reloaded.status_code, reloaded.text) == (200, "configuration reloaded\n")
        running.write("targets: [")
        refused = await http.post("/-/reload")
        assert refused.status_code == 500
        assert refused.text.startswith("failed to reload the configuration: invalid configuration")


async def test_post_reload_is_behind_the_listeners_authentication(tmp_path: Path) -> None:
    web = WebConfig.model_validate({"basic_auth_users": {USER: PASSWORD_HASH}})
    async with rig(tmp_path, web) as running, httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.post("/-/reload")).status_code == 401
        allowed = await http.post("/-/reload", headers=basic_auth())
        assert allowed.status_code == 200


async def test_without_the_lifecycle_flag_there_is_no_reload_endpoint(tmp_path: Path) -> None:
    simulator = Simulator(Scenario.model_validate(scenario_data()), throttling=False)
    async with SimulatorServer(simulator) as server:
        exporter = Exporter(
            Config.model_validate(document(server.url, HZ_A)),
            listen=ListenSettings(address="127.0.0.1:0"),
            metrics=SelfMetrics(),
        )
        await exporter.start()
        try:
            async with httpx.AsyncClient() as http:
                answer = await http.post(f"http://127.0.0.1:{exporter.listener.port}/-/reload")
            assert answer.status_code in (404, 405)
        finally:
            await exporter.stop()


async def test_reloads_never_overlap(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        running.write(document(running.endpoint, HZ_B))
        outcomes = await asyncio.gather(*(running.reloader.reload("test") for _ in range(3)))

        assert [o.changed for o in outcomes] == [True, False, False]
        assert all(o.success for o in outcomes)


async def test_a_read_whose_thread_lingers_after_returning_does_not_fail_the_next_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read's daemon thread outlives the value it handed over for a moment; the next
    reload must not take that moment for a read still stuck on a FIFO."""
    started = reload_module.start_daemon_call

    def lingering(fn: Callable[[], Any], name: str) -> tuple[threading.Thread, Any]:
        _, result = started(fn, name)
        still_alive = threading.Thread(target=time.sleep, args=(2.0,), daemon=True)
        still_alive.start()
        return still_alive, result

    monkeypatch.setattr(reload_module, "start_daemon_call", lingering)
    async with rig(tmp_path) as running:
        running.write(document(running.endpoint, HZ_B))
        first = await running.reloader.reload("test")
        second = await running.reloader.reload("test")

        assert (first.success, first.changed) == (True, True)
        assert (second.success, second.changed) == (True, False), second.message


# --- the process: signals ---------------------------------------------------------------


def test_sighup_reloads_the_config_file(tmp_path: Path) -> None:
    with simulator_thread() as (_, url):
        first = config_document(url, ["vpn-hzadmin"])
        with exporter_process(tmp_path, first) as process:
            process.wait_for(lambda t: "vpn-hzadmin" in t, "the first gateway is polled")

            write_yaml(process.config, config_document(url, ["vpn-hzlocked"]))
            process.popen.send_signal(signal.SIGHUP)
            text = process.wait_for(
                lambda t: value(t, "aliyun_vpn_poll_success", vpn_gateway_id="vpn-hzlocked") == 1,
                "the new gateway is polled",
            )
            assert "vpn-hzadmin" not in text

            process.config.write_text("targets: [")
            process.popen.send_signal(signal.SIGHUP)
            text = process.wait_for(
                lambda t: value(t, "aliyun_vpn_config_last_reload_successful") == 0,
                "the failed reload is reported",
            )
            assert value(text, "aliyun_vpn_poll_success", vpn_gateway_id="vpn-hzlocked") == 1
            assert process.stop() == 0
        log = process.log()
        assert "configuration reloaded" in log
        assert "configuration reload failed, the previous configuration keeps running" in log


def test_post_reload_on_the_admin_listener_needs_authentication(tmp_path: Path) -> None:
    with simulator_thread() as (_, url):
        with exporter_process(tmp_path, config_document(url, admin=True), admin=True) as process:
            assert httpx.post(f"{process.admin_url}/-/reload").status_code == 401
            write_yaml(process.config, config_document(url, ["vpn-hzlocked"], admin=True))
            answer = httpx.post(f"{process.admin_url}/-/reload", auth=(USER, PASSWORD))
            assert (answer.status_code, answer.text) == (200, "configuration reloaded\n")
            # Without --web.enable-lifecycle the metrics listener has no such endpoint.
            assert httpx.post(f"{process.url}/-/reload").status_code in (404, 405)
        assert f"user={USER}" in process.log()


def create_in_background(process: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """POST a route create from a thread; the result lands in the returned dict."""
    result: dict[str, Any] = {}

    def create() -> None:
        try:
            result["response"] = httpx.post(
                f"{process.admin_url}/api/v1/vpn-connections/{CONNECTION}/routes",
                json=ROUTE,
                auth=(USER, PASSWORD),
                timeout=BOUND,
            )
        except httpx.HTTPError as error:  # pragma: no cover - reported by the assertion
            result["error"] = error

    thread = threading.Thread(target=create)
    thread.start()
    return thread, result


def until_fired(simulator: Simulator) -> None:
    deadline = time.monotonic() + BOUND
    while not any(f.fired for f in simulator.faults.installed()):
        assert time.monotonic() < deadline, "the admin call never reached the cloud"
        time.sleep(0.01)


def shutdown_within(process: Any, seconds: float) -> tuple[int, float]:
    started = time.monotonic()
    code = process.stop(signal.SIGTERM, bound=seconds)
    return code, time.monotonic() - started


def test_sigterm_lets_an_admin_call_in_flight_finish_and_keeps_its_audit_line(
    tmp_path: Path,
) -> None:
    with simulator_thread() as (simulator, url):
        simulator.faults.add(Fault.latency(1.0, action="CreateVcoRouteEntry"))
        with exporter_process(tmp_path, config_document(url, admin=True), admin=True) as process:
            thread, result = create_in_background(process)
            until_fired(simulator)

            code, _ = shutdown_within(process, 10.0)

            thread.join(BOUND)
            assert code == 0
            assert result["response"].status_code == 202, result
        log = process.log()
        assert "outcome=pending" in log and "route create attempt" in log
        assert "msg=stopped" in log


def test_sigterm_cancels_an_admin_call_that_outlasts_the_grace_and_still_audits_it(
    tmp_path: Path,
) -> None:
    with simulator_thread() as (simulator, url):
        simulator.faults.add(Fault.timeout(60.0, action="CreateVcoRouteEntry"))
        with exporter_process(tmp_path, config_document(url, admin=True), admin=True) as process:
            thread, result = create_in_background(process)
            until_fired(simulator)

            code, _ = shutdown_within(process, 10.0)  # the bound is the requirement itself

            thread.join(BOUND)
            assert code == 0
            assert result["response"].status_code == 503, result
        log = process.log()
        assert "outcome=cancelled" in log
        assert "admin requests cancelled at shutdown" in log


def test_sigterm_without_admin_stops_polling_and_exits_0(tmp_path: Path) -> None:
    with simulator_thread() as (simulator, url):
        simulator.faults.add(Fault.timeout(60.0, action="GetVpnGatewayDiagnoseResult"))
        with exporter_process(tmp_path, config_document(url)) as process:
            until_fired(simulator)  # a poll hangs in flight
            code, _ = shutdown_within(process, 10.0)
            assert code == 0


async def test_a_reload_keeps_the_pace_a_target_achieved(tmp_path: Path) -> None:
    async with rig(tmp_path) as running:
        sg = SG  # the Singapore target, kept by the reload
        # Stands for a pace measured over a completed cycle (a 1h cycle does not complete
        # within a test): under throttling it is far above the planned interval.
        running.exporter.scheduler.restore_pace(sg, 4321.0)
        running.write(document(running.endpoint, HZ_B))
        outcome = await running.reloader.reload("test")
        assert (outcome.success, outcome.changed) == (True, True)
        text = await running.scrape()
        assert value(text, "aliyun_vpn_poll_effective_interval_seconds", target=sg) == 4321
