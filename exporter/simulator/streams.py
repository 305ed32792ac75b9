"""Faults that go wrong while the body is on the wire: answers no complete message describes.

- `reset_mid_body`: the normal answer's headers (with its true `Content-Length`) and the
  first half of its body, then a TCP reset;
- `huge_body`: HTTP 200, `application/json`, chunked (no `Content-Length`, so a client
  learns the size only by reading), `size` bytes (default 50 MB) of one valid JSON object;
- `drip`: HTTP 200, chunked, one byte of a JSON object every `seconds` (default 1), never
  finished: it ends only when the client goes away or the server stops.

Each is an ASGI `Response` the simulator's pipeline returns; none buffers its whole body.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from exporter.simulator.replies import ABORT_EXTENSION, JSON_MEDIA_TYPE

DEFAULT_HUGE_BODY_BYTES = 50 * 1024 * 1024
DEFAULT_DRIP_SECONDS = 1.0
_CHUNK = 64 * 1024
_READ_GRACE = 0.05


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", JSON_MEDIA_TYPE.encode()), *headers],
    }


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (the request body, if any, is read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class ResetMidBody(Response):
    """`content`'s headers and first half, then a reset (see the module doc)."""

    def __init__(self, content: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=200)
        self._content = content
        self._extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = str(len(self._content)).encode()
        await send(_start(200, [(b"content-length", length), *self._extra]))
        half = self._content[: len(self._content) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # A reset discards what the client has not read yet: give it time to read the half.
        await asyncio.sleep(_READ_GRACE)
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        if abort is not None and abort():
            await asyncio.sleep(0)  # let the server see the connection go first
        # Without the simulator's server the message stays unfinished and is dropped.


class HugeBody(Response):
    """A valid JSON object of about `size` bytes, streamed in chunks without a length."""

    def __init__(self, size: int, request_id: str) -> None:
        super().__init__(status_code=200)
        self._size = size
        self._request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = f'{{"RequestId":"{self._request_id}","Padding":"'.encode()
        tail = b'"}'
        await send(_start(200, [(b"x-acs-request-id", self._request_id.encode())]))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.body", "body": head, "more_body": True})
            left = max(0, self._size - len(head) - len(tail))
            filler = b"x" * _CHUNK
            while left > 0 and not gone.done():
                piece = filler if left >= _CHUNK else filler[:left]
                left -= len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


class Drip(Response):
    """Headers at once, then a byte every `seconds`, until the client goes or `stop` is
    done (the connection is then reset); `done` is called at the end either way."""

    def __init__(
        self, seconds: float, stop: asyncio.Future[None], done: Callable[[], None]
    ) -> None:
        super().__init__(status_code=200)
        self._seconds = seconds
        self._stop = stop
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        body = b'{"RequestId":"' + b"drip" * 4
        try:
            await send(_start(200, []))
            index = 0
            while True:
                byte = body[index % len(body) : index % len(body) + 1]
                await send({"type": "http.response.body", "body": byte, "more_body": True})
                index += 1
                finished, _ = await asyncio.wait(
                    [gone, self._stop], timeout=self._seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if finished:
                    break
            abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
            if not gone.done() and abort is not None and abort():
                await asyncio.sleep(0)
        finally:
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            self._done()
        # Never finished: without the simulator's server, the server drops the connection.
