"""The gate in front of the admin API: authentication, a body size cap and draining.

It runs before any routing or body parsing, so a request that does not authenticate learns
nothing else (not even whether its body would have been valid) and costs no cloud call. A
failure answers 401 with `WWW-Authenticate` and a problem document, is counted and logged
without the credentials, and, when it targeted a route create, gets its audit line.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.admin.audit import Audit, operation_of
from exporter.admin.problems import (
    PAYLOAD_TOO_LARGE,
    SHUTTING_DOWN,
    UNAUTHENTICATED,
    ProblemError,
)
from exporter.web.authentication import (
    Authenticator,
    Principal,
    authorization_header,
    log_auth_failure,
)

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
        if self._draining:
            await self._refuse(
                scope,
                send,
                operation,
                ProblemError(
                    SHUTTING_DOWN, "the exporter is stopping", retry_after=self._retry_after
                ),
            )
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
            log_auth_failure(scope, outcome)
            if operation == "create_route":
                self._audit.route_attempt(
                    UNAUTHENTICATED.reason,
                    UNAUTHENTICATED.status,
                    {"user": outcome.user, "remote_addr": client_address(scope)},
                )
            challenge = ", ".join(self._authenticator.challenges)
            problem = ProblemError(
                UNAUTHENTICATED,
                "send a configured basic auth user or bearer token",
                headers={"WWW-Authenticate": challenge},
            )
            await self._refuse(scope, send, operation, problem)
            return
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = outcome
        body = await self._read_body(receive)
        if body is None:
            problem = ProblemError(
                PAYLOAD_TOO_LARGE, f"the body may be at most {self._max_body_bytes} bytes"
            )
            await self._refuse(scope, send, operation, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body, or None once it exceeds the cap (reading stops there)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(
        self, scope: Scope, send: Send, operation: str, problem: ProblemError
    ) -> None:
        self._audit.failure(operation, problem.kind.reason)

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
