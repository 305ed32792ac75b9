"""Child processes: every server a benchmark measures runs in a process of its own.

A benchmark child (`python -m benchmarks.<module>`) prints one `READY {json}` line on
stdout when it serves, then answers commands written to its stdin, one JSON line each
(`OK {json}`). Other children (the simulator, the exporter's own command line) are
waited for on their TCP port. Each child's stderr goes to a log file whose tail is shown
when it dies, so a failed run says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ChildFailed(RuntimeError):
    """A child process died or did not answer in time."""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(extra or {})
    return env


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, child: Child | None = None) -> float:
    """Wait until `127.0.0.1:port` accepts connections; return the seconds it took."""
    started = time.perf_counter()
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return time.perf_counter() - started
        if child is not None:
            child.check_alive()
        if time.perf_counter() - started > timeout:
            raise ChildFailed(f"nothing listens on port {port} after {timeout:.0f}s")
        time.sleep(0.01)


class Child:
    """One child process with its stdout read by a thread and its stderr logged."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, *argv]
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=child_env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def log_text(self) -> str:
        """Everything the child wrote to stderr so far."""
        try:
            return Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ChildFailed(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def expect(self, prefix: str, timeout: float) -> dict[str, Any]:
        """The JSON after the next stdout line starting with `prefix` (other lines skipped)."""
        deadline = time.perf_counter() + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ChildFailed(f"{self.name} said no {prefix!r} within {timeout:.0f}s")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                self.check_alive()
                continue
            if line is None:
                self.process.wait(5)
                self.check_alive()
                raise ChildFailed(f"{self.name} closed its stdout")
            if line.startswith(prefix + " "):
                result: dict[str, Any] = json.loads(line[len(prefix) + 1 :])
                return result

    def ready(self, timeout: float = 120.0) -> dict[str, Any]:
        return self.expect("READY", timeout)

    def command(self, name: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        """Send a command to a benchmark child and return its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"command": name, **args}) + "\n")
        self.process.stdin.flush()
        return self.expect("OK", timeout)

    def rss_bytes(self) -> tuple[int, int]:
        """(current, peak) resident memory of the child, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def cpu_seconds(self) -> float:
        """User + system CPU the child has used so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        with contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def simulator(
    gateways: int, regions: Sequence[str], *, throttling: bool = False
) -> Iterator[tuple[Child, int]]:
    """The product's simulator (`python -m exporter simulate`) in its own process."""
    port = free_port()
    argv = [
        "-m",
        "exporter",
        "simulate",
        f"--gateways={gateways}",
        f"--regions={','.join(regions)}",
        f"--listen-address=127.0.0.1:{port}",
        "--log.level=warning",
    ]
    if not throttling:
        argv.append("--no-throttling")
    with Child("simulator", argv) as child:
        wait_for_port(port, 60, child)
        yield child, port


def serve_commands(
    handlers: dict[str, Callable[..., Any]], loop: asyncio.AbstractEventLoop | None = None
) -> None:
    """In a benchmark child: answer stdin commands until stdin closes (blocking).

    With `loop`, a handler returning a coroutine runs in that loop (from this thread).
    """
    for line in sys.stdin:
        request = json.loads(line)
        name = request.pop("command")
        answer = handlers[name](**request)
        if inspect.iscoroutine(answer):
            assert loop is not None
            answer = asyncio.run_coroutine_threadsafe(answer, loop).result()
        print("OK " + json.dumps(answer), flush=True)


def announce(**fields: Any) -> None:
    """In a benchmark child: say it is ready, with whatever the parent needs to know."""
    print("READY " + json.dumps(fields), flush=True)


def own_memory() -> dict[str, float]:
    """In a child: its resident memory now and at peak, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(fields["VmHWM"].split()[0]) / 1024,
    }
