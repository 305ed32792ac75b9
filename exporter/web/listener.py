"""An ASGI app served by uvicorn inside the exporter's own event loop.

Both listeners (metrics and admin) bound what one client can hold of them (`Limits`):
uvicorn limits header size and idle keep-alive connections, but nothing stops a client that
connects and says nothing, sends its request a byte at a time (slowloris), or never reads
its answer. `_GuardedH11Protocol` adds those deadlines; the HTTP implementation is pinned
to h11 so that the header limit holds whatever else is installed (uvicorn would pick
httptools, which ignores it, when present). Connections are accepted by
`exporter.web.acceptor.Acceptor` rather than asyncio's own loop: it limits what one client
address may hold, bounds TLS handshakes and keeps the listeners within their share of the
process's file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from exporter.web.acceptor import RESERVED_FDS, AcceptLimits, Acceptor, SocketBudget, shared_budget
from exporter.web.web_config import TlsSettings

log = logging.getLogger(__name__)

_HEAD_PIECE = 4096
"""Bytes of a request head handed to h11 at a time (see `_GuardedH11Protocol`)."""


class ListenAddressError(ValueError):
    """A `--*.listen-address` flag that is not `[host]:port`."""


def parse_listen_address(address: str) -> tuple[str, int]:
    """`:9747` (all interfaces), `127.0.0.1:9747`, `[::1]:9747` → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        hint = f" (did you mean ':{address}'?)" if address.isdigit() else ""
        raise ListenAddressError(f"listen address {address!r} is not [host]:port{hint}")
    if not port_text.isdigit():
        raise ListenAddressError(f"listen address {address!r} has no port number after ':'")
    if not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(f"listen address {address!r}: port {port_text} is not 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether `host` (of a listen address) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may hold of a listener; beyond it the connection is closed."""

    max_header_bytes: int = 64 * 1024
    """Request line and headers; more is answered 400 and the connection closed."""
    read_timeout: float = 10.0
    """Seconds a request (line, headers and body) may take to arrive, counted from the
    connection or from its first byte on a kept-alive connection: a silent or slow
    (slowloris) client is disconnected."""
    write_timeout: float = 30.0
    """Seconds an answer may wait for a client that reads none of it (a full send buffer)."""
    keep_alive_timeout: float = 30.0
    """Seconds an idle kept-alive connection stays open between requests."""
    max_connections: int = 512
    """Connections (and requests in flight) beyond which requests are answered 503; an
    eighth more are accepted to hear that answer, further ones wait in the backlog."""
    max_connections_per_address: int = 32
    """Connections (TLS handshakes included) one client address may hold; more are closed
    as soon as they are accepted, so one client cannot crowd out Prometheus."""
    handshake_timeout: float = 10.0
    """Seconds a TLS handshake may take from the connection; then it is dropped."""
    stop_timeout: float = 2.0
    """Seconds a stopping listener lets answers in flight finish before cancelling them."""


def sockets_held_at_most(limits: Limits) -> int:
    """Sockets one listener holds at most: its connections, an eighth more that hear 503,
    handshakes included."""
    return limits.max_connections + max(1, limits.max_connections // 8)


def open_files_needed(listeners: int, limits: Limits | None = None) -> int:
    """The open-file limit at which `listeners` listeners at their limits still leave the
    rest of the process `RESERVED_FDS` descriptors."""
    return listeners * sockets_held_at_most(limits or Limits()) + RESERVED_FDS


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the read and write deadlines of `Limits`."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
        self.on_lost: Callable[[], None] | None = None
        """Set by the `Acceptor`: gives the connection's share of the limits back."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm_read()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read()
        self._disarm_write()
        try:
            super().connection_lost(exc)
        finally:
            if self.on_lost is not None:
                self.on_lost()

    def data_received(self, data: bytes) -> None:
        if self._read_deadline is None and self.conn.their_state is h11.IDLE:
            self._arm_read()  # the first byte of another request on a kept-alive connection
        if self.conn.their_state is h11.IDLE and len(data) > _HEAD_PIECE:
            # h11 enforces its size limit only on an incomplete head: a whole head in one
            # read (asyncio reads up to 256 KiB) would pass. Fed in pieces, a head longer
            # than the limit is always seen incomplete first, and refused (400).
            for start in range(0, len(data), _HEAD_PIECE):
                if self.transport.is_closing():
                    return
                super().data_received(data[start : start + _HEAD_PIECE])
        else:
            super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._disarm_read()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(
                self.limits.write_timeout, self._too_slow, "reads no answer"
            )

    def resume_writing(self) -> None:
        self._disarm_write()
        super().resume_writing()

    def _arm_read(self) -> None:
        self._disarm_read()
        self._read_deadline = self.loop.call_later(
            self.limits.read_timeout, self._too_slow, "sends no complete request"
        )

    def _disarm_read(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _disarm_write(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _too_slow(self, what: str) -> None:
        self._read_deadline = self._write_deadline = None
        if self.transport.is_closing():
            return
        log.debug(
            "client too slow, connection closed",
            extra={"fields": {"remote_addr": self.client[0] if self.client else None, "why": what}},
        )
        # abort, not close: close would wait for a client that does not read to drain.
        self.transport.abort()


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the exporter, which stops every part in
    order, and accepts connections through an `Acceptor`."""

    def __init__(
        self, config: uvicorn.Config, limits: AcceptLimits, budget: SocketBudget, name: str
    ) -> None:
        super().__init__(config)
        self._accept_limits = limits
        self._budget = budget
        self._name = name

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up for given sockets, with an `Acceptor` on each instead of
        `loop.create_server`."""
        await self.lifespan.startup()
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return protocol

        acceptors = [
            Acceptor(
                sock, create_protocol, config.ssl, self._accept_limits, self._budget, self._name
            )
            for sock in sockets or ()
        ]
        for acceptor in acceptors:
            acceptor.start()
        self.servers = acceptors  # type: ignore[assignment]
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The acceptors close their sockets once their accept loops have stopped.
        await super().shutdown(sockets=None)


class _Config(uvicorn.Config):
    """uvicorn's config, plus the minimum TLS version it has no option for."""

    def __init__(self, *args: Any, min_tls_version: ssl.TLSVersion | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_tls_version = min_tls_version

    def load(self) -> None:
        super().load()
        if self.ssl is not None and self.min_tls_version is not None:
            self.ssl.minimum_version = self.min_tls_version


class Listener:
    """One HTTP(S) listener; `start` returns once the socket is bound."""

    def __init__(
        self,
        app: ASGIApp,
        address: str,
        tls: TlsSettings | None = None,
        limits: Limits | None = None,
        budget: SocketBudget | None = None,
    ) -> None:
        """`budget`: the sockets all listeners may hold together (default: the process's,
        from its open-file limit)."""
        self.address = address
        self.limits = limits or Limits()
        protocol = type("GuardedH11Protocol", (_GuardedH11Protocol,), {"limits": self.limits})
        host, port = parse_listen_address(address)
        options: dict[str, Any] = {}
        if tls is not None:
            options.update(
                ssl_certfile=tls.certfile,
                ssl_keyfile=tls.keyfile,
                ssl_ca_certs=tls.client_ca_file,
                ssl_cert_reqs=tls.client_cert_required,
            )
        config = _Config(
            app,
            min_tls_version=tls.min_version if tls is not None else None,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            http=protocol,
            timeout_keep_alive=self.limits.keep_alive_timeout,
            h11_max_incomplete_event_size=self.limits.max_header_bytes,
            limit_concurrency=self.limits.max_connections,
            timeout_graceful_shutdown=self.limits.stop_timeout,
            server_header=False,
            **options,
        )
        accept = AcceptLimits(
            max_sockets=sockets_held_at_most(self.limits),
            per_address=self.limits.max_connections_per_address,
            handshake_timeout=self.limits.handshake_timeout,
        )
        self._server = _Server(config, accept, budget or shared_budget(), address)
        self._bind_to = (host, port)
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    async def start(self) -> None:
        """Bind the socket here, so a busy port is a plain `OSError` naming the address
        (uvicorn would `sys.exit` from inside its task), then serve on it."""
        host, port = self._bind_to
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, backlog=2048)
        except OSError as error:
            raise OSError(f"cannot listen on {self.address}: {error.strerror}") from None
        self._port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"cannot serve on {self.address}")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.address} is not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._server.started and self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
