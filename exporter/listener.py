"""An ASGI app served by uvicorn inside the exporter's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class ListenAddressError(ValueError):
    """A `--*.listen-address` flag that is not `[host]:port`."""


def parse_listen_address(address: str) -> tuple[str, int]:
    """`:9747` (all interfaces), `127.0.0.1:9747`, `[::1]:9747` → (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(f"listen address {address!r} is not [host]:port")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """What uvicorn needs to serve TLS (see `exporter.web_config`)."""

    certfile: str
    keyfile: str
    client_ca_file: str | None = None
    client_cert_required: int = ssl.CERT_NONE
    min_version: ssl.TLSVersion | None = None


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the exporter, which stops every part in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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

    def __init__(self, app: ASGIApp, address: str, tls: TlsSettings | None = None) -> None:
        self.address = address
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
            timeout_keep_alive=30,
            h11_max_incomplete_event_size=64 * 1024,
            **options,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                # uvicorn logs the bind error and exits; say which address failed
                with contextlib.suppress(SystemExit):
                    self._task.result()
                raise OSError(f"cannot listen on {self.address}")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def running(self) -> bool:
        return self._server.started and self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
