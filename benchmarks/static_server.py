"""Child: the limit. The exporter's own scraped bytes, served as static files by the same
server stack (the product's `Listener`: uvicorn with the exporter's settings).

`python -m benchmarks.static_server --plain F --openmetrics F --gzip F`

Each file is read into memory once and sent with the headers the exporter sends, chosen
by the same content negotiation (`exporter.web.metrics_app.wants_openmetrics`/`wants_gzip`), in
chunks of `--chunk-bytes` (1 MiB by default: of the sizes tried, from 32 KiB to the whole
file at once, the fastest for uvicorn here). Nothing is rendered, joined or compressed per
request: no exporter can serve these bytes faster on this stack, which is what "limit"
means.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from starlette.types import Receive, Scope, Send

from benchmarks.procs import announce
from exporter.web.listener import Listener
from exporter.web.metrics_app import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    wants_gzip,
    wants_openmetrics,
)


class StaticMetrics:
    """Serves fixed bodies on every path, negotiated like `/metrics`."""

    def __init__(self, plain: bytes, openmetrics: bytes, gzip: bytes, chunk: int) -> None:
        def chunks(body: bytes) -> list[bytes]:
            return [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]

        self.bodies = {
            (False, False): (TEXT_CONTENT_TYPE, chunks(plain)),
            (True, False): (OPENMETRICS_CONTENT_TYPE, chunks(openmetrics)),
            (False, True): (TEXT_CONTENT_TYPE, chunks(gzip)),
            (True, True): (OPENMETRICS_CONTENT_TYPE, chunks(gzip)),
        }
        self.lengths = {key: sum(map(len, value[1])) for key, value in self.bodies.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers", []))
        key = (
            wants_openmetrics(headers.get(b"accept", b"").decode("latin-1")),
            wants_gzip(headers.get(b"accept-encoding", b"").decode("latin-1")),
        )
        content_type, chunks = self.bodies[key]
        response_headers = [
            (b"content-type", content_type),
            (b"content-length", str(self.lengths[key]).encode()),
            (b"vary", b"Accept, Accept-Encoding"),
        ]
        if key[1]:
            response_headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def main(args: argparse.Namespace) -> None:
    app = StaticMetrics(
        Path(args.plain).read_bytes(),
        Path(args.openmetrics).read_bytes(),
        Path(args.gzip).read_bytes(),
        args.chunk_bytes,
    )
    listener = Listener(app, "127.0.0.1:0")
    await listener.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    announce(port=listener.port)
    await stop.wait()
    await listener.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plain", required=True)
    parser.add_argument("--openmetrics", required=True)
    parser.add_argument("--gzip", required=True)
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20)
    asyncio.run(main(parser.parse_args()))
