"""The metrics listener: `/metrics`, `/healthz`, `/readyz` and the status page at `/`.

`/metrics` is a bare ASGI handler: it streams the exposition's cached gzip segments (one
per family) as they are, or inflates them piece by piece for a client that does not take
gzip, followed by the small self-metrics registry, rendered per scrape by the stock
client library. Nothing per-gateway is rendered on the scrape path, and no plain copy of
the text is kept for the rare uncompressed scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping

from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.exposition.cells import inflated_pieces
from exporter.exposition.gzip_segments import (
    FINAL_EMPTY_BLOCK,
    Segment,
    compress_segment,
    crc32_combine,
    gzip_member,
)
from exporter.exposition.render import Exposition
from exporter.telemetry.self_metrics import SelfMetrics
from exporter.web.health_app import Check, probe

TEXT_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = b"application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """Prometheus asks for OpenMetrics first; honour it unless it is explicitly refused."""
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        if media.strip() == "application/openmetrics-text":
            return "q=0" not in params.replace(" ", "").split(";")
    return False


def wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0")
    return False


class MetricsEndpoint:
    """Serves the cached exposition plus the self-metrics."""

    def __init__(self, exposition: Exposition, self_metrics: SelfMetrics) -> None:
        self.exposition = exposition
        self.self_metrics = self_metrics
        self._gzip: _GzipPieces | None = None

    def body(self, *, openmetrics: bool, gzip: bool) -> tuple[bytes, int, Iterator[bytes]]:
        """The content type, length and body chunks of one scrape.

        The body is fixed when this returns (the family segments are immutable bytes): the
        plain text is inflated from them while it is sent, so updates meanwhile do not
        change what this scrape sends."""
        registry = self.self_metrics.registry
        if openmetrics:
            content_type = OPENMETRICS_CONTENT_TYPE
            tail = openmetrics_format.generate_latest(registry)  # type: ignore[no-untyped-call]
        else:
            content_type = TEXT_CONTENT_TYPE
            tail = text_format.generate_latest(registry)
        segments = list(self.exposition.segments())
        if gzip:
            if self._gzip is None or not self._gzip.holds(segments):
                self._gzip = _GzipPieces(segments)
            chunks = self._gzip.member(compress_segment(tail))
            return content_type, sum(map(len, chunks)), iter(chunks)
        length = sum(segment.size for segment in segments) + len(tail)
        return content_type, length, _coalesced(_plain(segments, tail), SEND_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name: value for name, value in scope.get("headers", [])}
        if scope.get("method") not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD")]
            body = b"method not allowed\n"
            await _send_all(send, 405, b"text/plain", len(body), iter([body]), allow)
            return
        gzip = wants_gzip(headers.get(b"accept-encoding", b"").decode("latin-1"))
        content_type, length, chunks = self.body(
            openmetrics=wants_openmetrics(headers.get(b"accept", b"").decode("latin-1")),
            gzip=gzip,
        )
        extra = [(b"vary", b"Accept, Accept-Encoding")]
        if gzip:
            extra.append((b"content-encoding", b"gzip"))
        if scope.get("method") == "HEAD":
            chunks = iter(())
        await _send_all(send, 200, content_type, length, chunks, extra)


SEND_BYTES = 256 * 1024
"""A body is written in pieces of at least this size (but the last): a run of small writes
(family segments or texts of a few KB) can stall on the client's delayed ACK, some 40 ms
per scrape on Linux, where a few large ones do not."""


SEND_SLICE = 0.02
"""Seconds a response may hold the event loop before it yields (see `_send_all`)."""


class _GzipPieces:
    """The gzip member of a set of family segments, as pieces of at least `SEND_BYTES`
    (small segments joined, large ones as they are), kept until a segment changes: a
    gzip scrape copies nothing but the self-metrics."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.pieces = list(_coalesced(iter(gzip_member(segments)[:-1]), SEND_BYTES))
        self.crc = 0
        self.size = 0
        for segment in segments:
            self.crc = crc32_combine(self.crc, segment.crc, segment.size)
            self.size += segment.size

    def holds(self, segments: list[Segment]) -> bool:
        return len(segments) == len(self.segments) and all(
            a is b for a, b in zip(segments, self.segments, strict=True)
        )

    def member(self, tail: Segment) -> list[bytes]:
        """The whole member with `tail` (the self-metrics) last."""
        crc = crc32_combine(self.crc, tail.crc, tail.size)
        size = (self.size + tail.size) & 0xFFFFFFFF
        end = (
            tail.deflated
            + FINAL_EMPTY_BLOCK
            + crc.to_bytes(4, "little")
            + size.to_bytes(4, "little")
        )
        if self.pieces and len(self.pieces[-1]) < SEND_BYTES:
            return [*self.pieces[:-1], self.pieces[-1] + end]
        return [*self.pieces, end]


def _coalesced(chunks: Iterator[bytes], minimum: int) -> Iterator[bytes]:
    """`chunks` in order: runs of small ones joined until they reach `minimum` bytes, big
    ones passed on as they are, never copied."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        if len(chunk) >= minimum:
            if pending:
                yield b"".join(pending)
                pending.clear()
                size = 0
            yield chunk
            continue
        pending.append(chunk)
        size += len(chunk)
        if size >= minimum:
            yield b"".join(pending)
            pending.clear()
            size = 0
    if pending:
        yield b"".join(pending)


def _plain(segments: list[Segment], tail: bytes) -> Iterator[bytes]:
    """The text of `segments`, inflated piece by piece, then `tail`."""
    for segment in segments:
        yield from inflated_pieces(segment.deflated)
    yield tail


async def _send_all(
    send: Send,
    status: int,
    content_type: bytes,
    length: int,
    chunks: Iterator[bytes],
    extra_headers: list[tuple[bytes, bytes]],
) -> None:
    """Send a response whose body is `chunks`, yielding to the event loop every
    `SEND_SLICE` seconds of work: inflating a plain body of 100 MB takes some 100-200 ms
    of CPU, which polls and other scrapes must not wait for in one go, while yielding
    after every piece would let each pending poll result go first hundreds of times."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(length).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    loop = asyncio.get_running_loop()
    slice_end = loop.time() + SEND_SLICE
    for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if loop.time() >= slice_end:
            await asyncio.sleep(0)
            slice_end = loop.time() + SEND_SLICE
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def build_metrics_app(
    metrics: MetricsEndpoint,
    *,
    healthy: Check,
    ready: Check,
    status_page: Callable[[Mapping[str, str]], Awaitable[str]],
) -> ASGIApp:
    """The ASGI app of the metrics listener."""

    async def index(request: Request) -> Response:
        return HTMLResponse(await status_page(request.query_params))

    others = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", probe(healthy)),
            Route("/readyz", probe(ready)),
        ]
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await metrics(scope, receive, send)
        else:
            await others(scope, receive, send)

    return app
