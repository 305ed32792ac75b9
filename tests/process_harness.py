"""The exporter's command line as a real process against a simulator served from a thread:
config files written to a directory, the admin API optionally enabled, and helpers to wait
(with generous bounds, never as speed checks) for what the process exposes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from exporter.simulator.server import run_simulator_in_thread
from exporter.simulator.simulator import Simulator
from tests.admin_harness import KEY_ID, KEY_SECRET, PASSWORD_HASH, USER, routes_scenario
from tests.demo_harness import STARTUP_BOUND, free_port

BOUND = 20.0
"""A generous bound on what a test waits for: proves it happens, not how fast."""


def config_document(
    endpoint: str,
    gateways: Sequence[str] = ("vpn-hzadmin",),
    *,
    admin: bool = False,
    credentials: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config polling `gateways` in cn-hangzhou through the simulator at `endpoint`."""
    keys = {"source": "access_key", "access_key_id": KEY_ID, "access_key_secret": KEY_SECRET}
    document: dict[str, Any] = {
        "credentials": {"default": dict(credentials or keys)},
        "poll": {"interval": "1h"},
        "api": {"endpoint": endpoint, "timeout": "5s", "max_retries": 1},
        "targets": [{"region_id": "cn-hangzhou", "gateways": list(gateways)}],
    }
    if admin:
        document["admin"] = {"enabled": True}
    return document


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    return path


@dataclass
class Process:
    """A running exporter process and where it listens."""

    popen: subprocess.Popen[bytes]
    port: int
    admin_port: int | None
    config: Path
    output: Path
    """stdout and stderr (the log) of the process."""

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, bound: float = BOUND) -> int:
        """Send `sig` and wait (up to `bound` seconds) for the exit code."""
        self.popen.send_signal(sig)
        return self.popen.wait(timeout=bound)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        assert self.admin_port is not None
        return f"http://127.0.0.1:{self.admin_port}"

    def scrape(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=BOUND)
        response.raise_for_status()
        return response.text

    def wait_for(self, condition: Callable[[str], bool], what: str) -> str:
        """Scrape until `condition(text)` holds; the text that satisfied it."""
        deadline = time.monotonic() + BOUND
        while True:
            assert self.popen.poll() is None, "the exporter exited"
            text = self.scrape()
            if condition(text):
                return text
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.05)


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`, if any."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        pairs = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(pairs.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


@contextmanager
def simulator_thread(simulator: Simulator | None = None) -> Iterator[tuple[Simulator, str]]:
    """The admin tests' scenario (or `simulator`) served from a thread; (simulator, URL)."""
    simulator = simulator or Simulator(routes_scenario(), throttling=False)
    with run_simulator_in_thread(simulator) as server:
        yield simulator, server.url


@contextmanager
def exporter_process(
    directory: Path,
    document: Mapping[str, Any] | str,
    *extra: str,
    admin: bool = False,
    admin_web: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Process]:
    """`python -m exporter --config.file=…` (a document, or YAML text as it is) with the
    admin API on its own port when `admin` (its web config `admin_web`, by default the
    admin tests' user), once both listeners accept connections; SIGTERM at exit."""
    config = directory / "config.yml"
    if isinstance(document, str):
        config.write_text(document)
    else:
        write_yaml(config, document)
    port = free_port()
    args = [f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", *extra]
    admin_port = None
    if admin:
        admin_port = free_port()
        web = write_yaml(
            directory / "admin-web.yml", admin_web or {"basic_auth_users": {USER: PASSWORD_HASH}}
        )
        args += [f"--admin.listen-address=127.0.0.1:{admin_port}", f"--admin.web.config.file={web}"]
    output = directory / "exporter.log"
    with output.open("wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    process = Process(popen, port, admin_port, config, output)
    try:
        deadline = time.monotonic() + STARTUP_BOUND
        for check in [port] + ([admin_port] if admin_port else []):
            while True:
                assert popen.poll() is None, process.log()
                try:
                    httpx.get(f"http://127.0.0.1:{check}/", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, f"nothing listens on {check}"
                    time.sleep(0.05)
        yield process
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
