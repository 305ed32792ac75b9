"""The shipped Alertmanager configuration on a real Alertmanager, delivering to this test.

`shipped_config` keeps the shipped routing tree, grouping and inhibition rules and changes
only what a test must: every receiver gets a webhook on this process (its path names the
receiver) and the timers shrink so a group is sent within a second.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.demo_harness import free_port
from tests.required_tools import ALERTMANAGER, REPO, tool

SHIPPED = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
WAIT = 30.0
"""A generous bound for anything to show up: proves it comes, not how fast."""


@dataclass
class Webhook:
    """Collects what Alertmanager delivers: one entry per notification."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self, status: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """Every delivered alert with `status` (any when None) and these labels."""
        with self.lock:
            return [
                dict(alert, receiver=notification["receiver"])
                for notification in self.notifications
                for alert in notification["alerts"]
                if (status is None or alert["status"] == status)
                and all(alert["labels"].get(k) == v for k, v in labels.items())
            ]

    def find(self, status: str, **labels: str) -> list[dict[str, Any]]:
        return self.alerts(status, **labels)

    def with_alert(self, **labels: str) -> list[dict[str, Any]]:
        """The notifications that carry an alert with these labels."""
        with self.lock:
            return [
                n
                for n in self.notifications
                if any(all(a["labels"].get(k) == v for k, v in labels.items()) for a in n["alerts"])
            ]


@contextlib.contextmanager
def serving(webhook: Webhook) -> Iterator[str]:
    """A webhook server for `webhook`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body["receiver"] = self.path.strip("/")
            with webhook.lock:
                webhook.notifications.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def shipped_config(webhook_url: str) -> dict[str, Any]:
    """The shipped configuration, delivering every receiver to `webhook_url`/<receiver>."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [
            {"url": f"{webhook_url}/{receiver['name']}", "send_resolved": True}
        ]
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for route in config["route"].get("routes", []):
        route.pop("repeat_interval", None)
    return config


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url} exited with {process.returncode}"
        try:
            if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready within {WAIT}s")


@contextlib.contextmanager
def running_alertmanager(config: dict[str, Any], work: Path) -> Iterator[str]:
    """Alertmanager on loopback with `config`; yields its base URL."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            tool(*ALERTMANAGER),
            f"--config.file={path}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
