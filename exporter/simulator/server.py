"""Serving a simulator over real HTTP with uvicorn: in the current loop or in a thread.

`SimulatorServer` starts in milliseconds and stops without uvicorn's polling waits, so a
test can start one per case. It also gives the app a way to reset a connection (the
`reset` and `timeout` faults), which ASGI itself cannot express.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import Receive, Scope, Send

from exporter.simulator.replies import ABORT_EXTENSION
from exporter.simulator.simulator import Simulator

_STOP_GRACE_SECONDS = 2.0


class SimulatorServer:
    """Runs `simulator` on `host:port` (port 0: any free port) in the running event loop.

    Use as `async with SimulatorServer(simulator) as server:`, then point clients at
    `server.endpoint` (`127.0.0.1:PORT`, the official SDK's form) or `server.url`.
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        config = uvicorn.Config(
            self._app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            # The simulator writes `Date` from its own (possibly manual) clock.
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._ticker: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            extensions = {
                **scope.get("extensions", {}),
                ABORT_EXTENSION: lambda: self._abort(client),
            }
            scope = {**scope, "extensions": extensions}
        await self.simulator.app(scope, receive, send)

    def _abort(self, client: Any) -> bool:
        """Reset (RST, not FIN) the connection from `client`; False if it is not found."""
        for connection in list(self._server.server_state.connections):
            if getattr(connection, "client", None) == client:
                transport = connection.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return True
        return False

    async def start(self) -> None:
        config = self._server.config
        config.load()
        self._server.lifespan = config.lifespan_class(config)
        try:
            await self._server.startup()
        except SystemExit:  # uvicorn's answer to a failed bind; it logged why
            raise OSError(f"the simulator cannot listen on {self.host}:{self.port}") from None
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        # uvicorn's own main loop only refreshes the Date header and checks for exit.
        self._ticker = asyncio.create_task(self._server.main_loop())

    async def stop(self) -> None:
        """Stop listening, end pending timeouts, let answers in flight finish, then close."""
        if self._ticker is not None:
            self._ticker.cancel()
        state = self._server.server_state
        for server in self._server.servers:
            server.close()
        for connection in list(state.connections):
            connection.shutdown()
        self.simulator.release_hangs()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_GRACE_SECONDS
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for connection in list(state.connections):
            connection.transport.abort()
        for server in self._server.servers:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


@contextlib.contextmanager
def run_simulator_in_thread(
    simulator: Simulator, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimulatorServer]:
    """Serve `simulator` from a thread with its own event loop (for synchronous clients)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="simulator", daemon=True)
    thread.start()
    server = SimulatorServer(simulator, host, port)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=10)
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
