"""The metrics listener: `/metrics`, `/healthz`, `/readyz` and the status page at `/`.

`/metrics` is a bare ASGI handler: it streams the exposition's cached family chunks (or
their cached gzip segments) followed by the small self-metrics registry, rendered per
scrape by the stock client library. Nothing per-gateway is rendered on the scrape path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.exposition.gzip_segments import compress_segment, gzip_member
from exporter.exposition.render import Exposition
from exporter.telemetry.self_metrics import SelfMetrics

TEXT_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = b"application/openmetrics-text; version=1.0.0; charset=utf-8"
Check = Callable[[], tuple[bool, str]]
SEND_BYTES = 256 * 1024
"""The cached pieces of a body (cells of ~16-32 KB, see `exporter.exposition.cells`) are handed to
the server joined into pieces of at least this size: uvicorn's cost per body message
(a dict, the HTTP framing, a `send` syscall) on thousands of cells is more than that of
copying the bytes once."""


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

    def body(self, *, openmetrics: bool, gzip: bool) -> tuple[bytes, list[bytes]]:
        """The content type and the body chunks of one scrape."""
        registry = self.self_metrics.registry
        if openmetrics:
            content_type = OPENMETRICS_CONTENT_TYPE
            tail = openmetrics_format.generate_latest(registry)  # type: ignore[no-untyped-call]
        else:
            content_type = TEXT_CONTENT_TYPE
            tail = text_format.generate_latest(registry)
        if gzip:
            segments = [*self.exposition.segments(), compress_segment(tail)]
            return content_type, gzip_member(segments)
        return content_type, [*self.exposition.chunks(), tail]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name: value for name, value in scope.get("headers", [])}
        if scope.get("method") not in ("GET", "HEAD"):
            allow = [(b"allow", b"GET, HEAD")]
            await _send_all(send, 405, b"text/plain", [b"method not allowed\n"], allow)
            return
        content_type, chunks = self.body(
            openmetrics=wants_openmetrics(headers.get(b"accept", b"").decode("latin-1")),
            gzip=wants_gzip(headers.get(b"accept-encoding", b"").decode("latin-1")),
        )
        extra = [(b"vary", b"Accept, Accept-Encoding")]
        if chunks and chunks[0][:2] == b"\x1f\x8b":
            extra.append((b"content-encoding", b"gzip"))
        if scope.get("method") == "HEAD":
            chunks = []
        await _send_all(send, 200, content_type, chunks, extra)


async def _send_all(
    send: Send,
    status: int,
    content_type: bytes,
    chunks: Iterable[bytes],
    extra_headers: list[tuple[bytes, bytes]],
) -> None:
    chunks = list(chunks)
    length = sum(len(chunk) for chunk in chunks)
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(length).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for chunk in _coalesced(chunks, SEND_BYTES):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _coalesced(chunks: list[bytes], minimum: int) -> Iterator[bytes]:
    """`chunks` in order: runs of small ones joined until they reach `minimum` bytes, big
    ones (a family's gzip segment) passed on as they are, never copied."""
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


def build_metrics_app(
    metrics: MetricsEndpoint,
    *,
    healthy: Check,
    ready: Check,
    status_page: Callable[[Mapping[str, str]], Awaitable[str]],
) -> ASGIApp:
    """The ASGI app of the metrics listener."""

    def probe(check: Check) -> Callable[[Request], Any]:
        async def endpoint(_: Request) -> Response:
            ok, detail = check()
            return PlainTextResponse(detail + "\n", status_code=200 if ok else 503)

        return endpoint

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
