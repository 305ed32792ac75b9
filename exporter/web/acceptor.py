"""Accepting connections so that no client, and no number of clients, can take a listener
down, nor starve the exporter's own polling of file descriptors.

asyncio's own accept loop has no notion of who connects: one address can hold every slot
(Prometheus then gets 503s), connections still in their TLS handshake are invisible to the
HTTP layer and held for 60 s, and when the process runs out of file descriptors every
failed `accept` logs a traceback while the API client's connections fail with "Too many
open files". `Acceptor` replaces it:

- it counts every accepted socket, TLS handshakes included, per client address and per
  listener: beyond `Limits.max_connections_per_address` a connection is closed at once
  (another address, such as Prometheus', is still served), beyond the listener's cap it is
  left in the kernel's backlog until a slot frees;
- a TLS handshake must finish within `Limits.handshake_timeout`;
- every listener's sockets together stay within a process-wide `SocketBudget`: the
  open-file limit minus `RESERVED_FDS` kept for the API client, files and the loop, so
  polling never shares the fate of the listeners;
- refusals, refused client certificates and accept errors are logged through a
  `LogLimiter` (one line, then a summary a minute), never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.telemetry.log_limit import LogLimiter

log = logging.getLogger(__name__)

RESERVED_FDS = 256
"""File descriptors the listeners leave to the rest of the process: the API client's
connections (at most 100), the state and config files, the event loop, logging."""
MAX_SOFT_LIMIT = 1 << 20
"""The highest soft open-file limit `raise_open_file_limit` asks for."""
_ACCEPT_PAUSE = 0.5
"""Seconds accepting pauses after the process ran out of file descriptors."""
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (as the Go runtime does for every
    Prometheus exporter); returns (soft, hard) as they are afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_SOFT_LIMIT if hard == resource.RLIM_INFINITY else min(hard, MAX_SOFT_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class SocketBudget:
    """How many sockets all listeners of the process may hold at once.

    Shared by listeners that may run on different event loops (tests), hence a thread
    lock, and wake-ups through each waiter's own loop.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._held = 0
        self._lock = threading.Lock()
        self._waiters: list[Callable[[], None]] = []

    @classmethod
    def from_open_file_limit(cls) -> SocketBudget:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = MAX_SOFT_LIMIT if soft == resource.RLIM_INFINITY else soft
        return cls(limit - RESERVED_FDS)

    @property
    def held(self) -> int:
        return self._held

    def take(self, wake: Callable[[], None]) -> bool:
        """Take a socket's share; False (and `wake` called once one frees up) if none is left."""
        with self._lock:
            if self._held < self.capacity:
                self._held += 1
                return True
            self._waiters.append(wake)
            return False

    def release(self) -> None:
        with self._lock:
            self._held -= 1
            waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()


_shared_budget: SocketBudget | None = None
_shared_lock = threading.Lock()


def shared_budget() -> SocketBudget:
    """The process's budget, sized from the open-file limit when first asked for (after
    `raise_open_file_limit`)."""
    global _shared_budget
    with _shared_lock:
        if _shared_budget is None:
            _shared_budget = SocketBudget.from_open_file_limit()
        return _shared_budget


@dataclass(frozen=True, slots=True)
class AcceptLimits:
    """What `Acceptor` enforces (from the listener's `Limits`)."""

    max_sockets: int
    """Sockets the listener holds at most (handshakes included); more wait in the backlog."""
    per_address: int
    """Sockets one client address may hold; more are closed at once."""
    handshake_timeout: float


class _Ticket:
    """One accepted socket's share of the counts; released exactly once."""

    __slots__ = ("_release", "taken")

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release
        self.taken = False
        """Whether asyncio took the socket over (then it closes it)."""

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class Acceptor:
    """Accepts on one listening socket (see the module docstring). Quacks like the
    `asyncio.Server` uvicorn keeps: `sockets`, `close`, `wait_closed`."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None,
        limits: AcceptLimits,
        budget: SocketBudget,
        name: str,
    ) -> None:
        self._sock = sock
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._limits = limits
        self._budget = budget
        self._name = name
        self._held = 0
        self._per_address: dict[str, int] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._refusals = LogLimiter(log, "connections refused")
        self._certificates = LogLimiter(log, "client certificates refused")
        self._accept_errors = LogLimiter(log, "accept errors")
        self._task: asyncio.Task[None] | None = None
        sock.setblocking(False)

    @property
    def sockets(self) -> list[socket.socket]:
        return [self._sock]

    @property
    def held(self) -> int:
        """Sockets this listener holds now (handshakes included)."""
        return self._held

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"accept {self._name}")

    def close(self) -> None:
        """Stop accepting (the socket closes once the accept loop has stopped) and end the
        handshakes still running."""
        if self._task is not None:
            self._task.cancel()
        else:
            self._sock.close()
        for handshake in list(self._handshakes):
            handshake.cancel()
        for limiter in (self._refusals, self._certificates, self._accept_errors):
            limiter.close()

    async def wait_closed(self) -> None:
        tasks = [*self._handshakes, *([self._task] if self._task else [])]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while True:
                await self._slot()
                try:
                    conn, peer = await self._loop.sock_accept(self._sock)
                except BaseException as error:
                    self._give_back()
                    if not isinstance(error, OSError):
                        raise
                    if self._sock.fileno() == -1:  # closed: nothing more to accept
                        return
                    if error.errno in _OUT_OF_RESOURCES:
                        self._accept_errors.event(
                            "accept",
                            logging.WARNING,
                            "cannot accept connections: out of resources",
                            {"listener": self._name},
                            {"error": error.strerror},
                        )
                        await asyncio.sleep(_ACCEPT_PAUSE)
                    continue
                self._admit(conn, str(peer[0]) if isinstance(peer, tuple) else "unix")
        finally:
            self._sock.close()

    async def _slot(self) -> None:
        """Wait until the listener and the process may hold one more socket, and take it."""
        while True:
            self._wake.clear()
            if self._held < self._limits.max_sockets and self._budget.take(self._wake_threadsafe):
                self._held += 1
                return
            await self._wake.wait()

    def _wake_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            self._loop.call_soon_threadsafe(self._wake.set)

    def _give_back(self) -> None:
        self._held -= 1
        self._budget.release()
        self._wake.set()

    def _admit(self, conn: socket.socket, address: str) -> None:
        count = self._per_address.get(address, 0)
        if count >= self._limits.per_address:
            conn.close()
            self._give_back()
            self._refusals.event(
                address,
                logging.WARNING,
                "connection refused: too many from one address",
                {"listener": self._name, "remote_addr": address},
                {"limit": self._limits.per_address},
            )
            return
        self._per_address[address] = count + 1

        def release() -> None:
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
            self._give_back()

        ticket = _Ticket(release)
        task = asyncio.create_task(self._connect(conn, address, ticket))
        self._handshakes.add(task)
        task.add_done_callback(lambda done: self._settled(done, conn, ticket))

    async def _connect(self, conn: socket.socket, address: str, ticket: _Ticket) -> None:
        ticket.taken = True

        def protocol() -> asyncio.Protocol:
            made = self._factory()
            if hasattr(made, "on_lost"):  # the listener's protocol gives the share back
                made.on_lost = ticket.release
            return made

        try:
            await self._loop.connect_accepted_socket(
                protocol,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self._limits.handshake_timeout if self._ssl else None,
            )
        except ssl.SSLCertVerificationError as error:
            self._refused_certificate(address, error.verify_message or error.reason)
            raise
        except ssl.SSLError as error:
            if error.reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED"):
                self._refused_certificate(address, error.reason)
            raise

    def _refused_certificate(self, address: str, reason: Any) -> None:
        self._certificates.event(
            address,
            logging.WARNING,
            "client certificate refused",
            {"listener": self._name, "remote_addr": address},
            {"reason": str(reason)},
        )

    def _settled(self, task: asyncio.Task[None], conn: socket.socket, ticket: _Ticket) -> None:
        """A handshake ended: a failed one (or one cancelled at shutdown) gives its share
        back now; a connection that was made gives it back when it is lost."""
        self._handshakes.discard(task)
        if task.cancelled() or task.exception() is not None:
            if not ticket.taken:
                conn.close()
            ticket.release()
