"""The gate in front of the admin API: authentication, the whole body or nothing, draining,
and the one audit line of every create attempt.

It runs before any routing or body parsing, so a request that does not authenticate learns
nothing else (not even whether its body would have been valid) and costs no cloud call. A
failure answers 401 with `WWW-Authenticate` and a problem document, is counted and logged
without the credentials (one line per client address and minute, see
`exporter.web.authentication`).

The body is read whole before the API sees it: a body over the cap is refused (413), and
one that never arrives whole (fewer bytes than its `Content-Length`, or no final chunk,
then a disconnect or the listener's own deadline for slow clients) is dropped: it never
reaches a handler, so it costs no cloud call. Paths holding control characters (`%0A`...)
are refused (404) rather than matched loosely by the router.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.admin.audit import (
    ATTEMPT_STATE_KEY,
    Audit,
    CreateAttempt,
    attempt_of,
    operation_of,
)
from exporter.admin.problems import (
    INCOMPLETE_REQUEST,
    MALFORMED_REQUEST,
    NOT_FOUND,
    PAYLOAD_TOO_LARGE,
    SHUTTING_DOWN,
    UNAUTHENTICATED,
    ProblemError,
)
from exporter.web.authentication import Authenticator, Principal, authorization_header

PRINCIPAL_STATE_KEY = "principal"
"""Where the gate leaves the caller's `Principal` in the request state."""


def principal_of(scope: Scope) -> Principal | None:
    principal = scope.get("state", {}).get(PRINCIPAL_STATE_KEY)
    return principal if isinstance(principal, Principal) else None


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class AdminGate:
    """ASGI middleware: refuses requests while stopping (503), authenticates (401), caps
    the body (413), and keeps track of requests in flight for a graceful stop."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        audit: Audit,
        *,
        max_body_bytes: int,
        retry_after: int,
    ) -> None:
        self.app = app
        self._authenticator = authenticator
        self._audit = audit
        self._max_body_bytes = max_body_bytes
        self._retry_after = retry_after
        self._draining = False
        self._cancelling = False
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        operation = operation_of(scope["method"], scope["path"])
        self._audit.request(operation)
        attempt = None
        if operation == "create_route":
            attempt = CreateAttempt({"remote_addr": client_address(scope)})
            scope.setdefault("state", {})[ATTEMPT_STATE_KEY] = attempt
        status: int | None = None

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._track(scope, receive, tracked_send, operation)
        finally:
            if attempt is not None:
                self._audit.route_attempt(
                    attempt.outcome or ("answered" if status else "dropped"),
                    attempt.status or status or 0,
                    attempt.fields,
                )

    async def _track(self, scope: Scope, receive: Receive, send: Send, operation: str) -> None:
        """Serve the request, counted among those in flight (unless stopping)."""
        if self._draining:
            problem = ProblemError(
                SHUTTING_DOWN, "the exporter is stopping", retry_after=self._retry_after
            )
            await self._refuse(scope, send, operation, problem)
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        self._idle.clear()
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._serve(scope, receive, tracked_send, operation)
        except asyncio.CancelledError:
            if not self._cancelling or started:
                raise
            # Cancelled by `cancel_in_flight` at shutdown: answer rather than drop.
            await self._refuse(
                scope,
                send,
                operation,
                ProblemError(
                    SHUTTING_DOWN,
                    "the exporter stopped before this request finished; its outcome is "
                    "unknown: retry with the same Idempotency-Key",
                    retry_after=self._retry_after,
                ),
            )
        finally:
            self._in_flight.discard(task)
            if not self._in_flight:
                self._idle.set()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, operation: str) -> None:
        outcome = await self._authenticator.authenticate(authorization_header(scope))
        if not isinstance(outcome, Principal):
            self._authenticator.log_failure(scope, outcome)
            challenge = ", ".join(self._authenticator.challenges)
            problem = ProblemError(
                UNAUTHENTICATED,
                "send a configured basic auth user or bearer token",
                headers={"WWW-Authenticate": challenge},
            )
            await self._refuse(scope, send, operation, problem, {"user": outcome.user})
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = outcome
        identity = {"user": outcome.name, "auth": outcome.method}
        if any(ord(char) < 0x20 or char == "\x7f" for char in scope["path"]):
            problem = ProblemError(NOT_FOUND, "no such path (it holds control characters)")
            await self._refuse(scope, send, operation, problem, identity)
            return
        try:
            body = await self._read_body(receive)
            if operation == "create_route":
                _require_utf8(body)
        except ProblemError as problem:
            await self._refuse(scope, send, operation, problem, identity)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole request body; `ProblemError` once it exceeds the cap (reading stops
        there) or when the client left (or was cut off) before sending all of it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ProblemError(
                    INCOMPLETE_REQUEST,
                    "the connection ended before the whole body arrived; nothing was done",
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                raise ProblemError(
                    PAYLOAD_TOO_LARGE, f"the body may be at most {self._max_body_bytes} bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        operation: str,
        problem: ProblemError,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self._audit.failure(operation, problem.kind.reason)
        attempt = attempt_of(scope.get("state", {}))
        if attempt is not None and attempt.outcome is None:
            attempt.settle(problem.kind.reason, problem.kind.status, fields)

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await problem.response(scope["path"])(scope, no_body, send)

    def drain(self) -> None:
        """Refuse new requests from now on (503 `shutting-down`)."""
        self._draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for requests in flight to finish; False if some
        are still running."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def cancel_in_flight(self) -> int:
        """Cancel the requests still running (they answer 503); return how many there were."""
        self._cancelling = True
        for task in self._in_flight:
            task.cancel()
        return len(self._in_flight)


_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
"""Bytes JSON never holds raw (RFC 8259): UTF-16 or UTF-32 text of ASCII is full of NULs."""


def _require_utf8(body: bytes) -> None:
    """JSON between systems is UTF-8 without a byte order mark (RFC 8259); `json.loads`
    would also take UTF-16 and UTF-32 (told apart by their NULs) and skip a BOM, and so
    act on what a client may not have meant to send."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or text.startswith("\ufeff") or _RAW_CONTROL.search(body):
        raise ProblemError(
            MALFORMED_REQUEST, "the body must be JSON in UTF-8, without a byte order mark"
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the real channel
    (which reports a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
