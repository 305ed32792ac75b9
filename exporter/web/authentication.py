"""Authentication of both listeners: basic auth (bcrypt) and bearer tokens, and the ASGI
wrappers that demand it and add the configured headers.

Timing does not tell which users exist: every basic auth check runs one bcrypt check at
each cost the configured users have (against the user's own hash at its cost, dummies at
the others), so an unknown user, a user with a cheap hash and one with a costly hash take
the same time. Bearer tokens are compared as digests, all of them every time.

bcrypt runs on the authenticator's own threads, so that a flood of wrong passwords cannot
hold up reloads or anything else on the loop's default executor. Failures are logged once
per client address, then summed up once a minute (`LogLimiter`), without any secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import bcrypt
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exporter.telemetry.log_limit import LogLimiter
from exporter.web.web_config import DEFAULT_REALM, BearerToken, WebConfig

log = logging.getLogger(__name__)

_SUCCESS_CACHE_SIZE = 1024
_BCRYPT_THREADS = max(1, min(4, os.cpu_count() or 1))

# --- authentication ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request authenticated as: a basic auth user or a bearer token's name."""

    name: str
    method: Literal["basic", "bearer"]


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """Why a request did not authenticate. `user` is a configured user name that was
    tried (never a name that is not configured: it might be a password typed in the
    wrong field)."""

    reason: Literal["missing", "malformed", "wrong_credentials"]
    user: str | None = None


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed[4:6])


class Authenticator:
    """Checks `Authorization` headers against basic auth users (bcrypt) and bearer tokens
    (see the module docstring). A successful check is remembered (keyed by a digest of
    user, password and hash) so that a client's every request does not pay it again, and
    identical checks in flight at once share one computation; failures are not remembered.
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        tokens: Iterable[BearerToken] = (),
        *,
        realm: str = DEFAULT_REALM,
    ) -> None:
        self._users = dict(users)
        self._tokens = tuple(tokens)
        self.realm = realm
        costs = sorted({bcrypt_cost(hashed) for hashed in self._users.values()})
        self._dummies = tuple(
            (cost, bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=cost))) for cost in costs
        )
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._failures = LogLimiter(log, "failed authentication attempts")

    @property
    def required(self) -> bool:
        """Whether any credentials are configured (else every request passes)."""
        return bool(self._users or self._tokens)

    @property
    def challenges(self) -> list[str]:
        """`WWW-Authenticate` values of a 401 answer, one per configured scheme."""
        values = []
        if self._users or not self._tokens:
            values.append(f'Basic realm="{self.realm}", charset="UTF-8"')
        if self._tokens:
            values.append(f'Bearer realm="{self.realm}"')
        return values

    async def authenticate(self, authorization: str | None) -> Principal | AuthFailure:
        """The principal an `Authorization` header value proves, or why it proves none."""
        if not authorization:
            return AuthFailure("missing")
        scheme, _, credentials = authorization.strip().partition(" ")
        credentials = credentials.strip()
        match scheme.lower():
            case "basic" if self._users:
                return await self._basic(credentials)
            case "bearer" if self._tokens:
                return self._bearer(credentials)
        return AuthFailure("malformed")

    def log_failure(self, scope: Scope, failure: AuthFailure) -> None:
        """A warning for a failed authentication (where from, which path, which configured
        user, if any, was tried; never the credentials): the first from an address at
        once, then a count per minute while they go on."""
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        self._failures.event(
            address,
            logging.WARNING,
            "authentication failed",
            {"remote_addr": address},
            {
                "reason": failure.reason,
                "user": failure.user,
                "method": scope.get("method"),
                "path": scope.get("path"),
            },
        )

    async def _basic(self, credentials: str) -> Principal | AuthFailure:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return AuthFailure("malformed")
        user, sep, password = decoded.partition(":")
        if not sep:
            return AuthFailure("malformed")
        hashed = self._users.get(user)
        if await self._check(password.encode(), user, hashed):
            return Principal(user, "basic")
        return AuthFailure("wrong_credentials", user if hashed is not None else None)

    def _bearer(self, token: str) -> Principal | AuthFailure:
        if not token:
            return AuthFailure("malformed")
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for candidate in self._tokens:
            if hmac.compare_digest(candidate.digest, digest):
                found = candidate
        return Principal(found.name, "bearer") if found else AuthFailure("wrong_credentials")

    async def _check(self, password: bytes, user: str, hashed: bytes | None) -> bool:
        """Whether `password` is the user's (False for an unknown user, `hashed` None),
        at the cost of one bcrypt check per configured cost either way."""
        key = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        check = self._pending.get(key)
        if check is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(_BCRYPT_THREADS, thread_name_prefix="bcrypt")
            check = asyncio.get_running_loop().run_in_executor(
                self._executor, _check_every_cost, password, hashed, self._dummies
            )
            self._pending[key] = check
            check.add_done_callback(lambda _: self._pending.pop(key, None))
        matched = await asyncio.shield(check)
        if matched:
            self._verified[key] = None
            if len(self._verified) > _SUCCESS_CACHE_SIZE:
                self._verified.popitem(last=False)
        return matched


def _check_every_cost(
    password: bytes, hashed: bytes | None, dummies: Sequence[tuple[int, bytes]]
) -> bool:
    matched = False
    for cost, dummy in dummies:
        if hashed is not None and bcrypt_cost(hashed) == cost:
            matched = checkpw(password, hashed)
        else:
            checkpw(password, dummy)
    return matched


def checkpw(password: bytes, hashed: bytes) -> bool:
    """`bcrypt.checkpw`, False for what bcrypt refuses (passwords over 72 bytes)."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


# --- ASGI wrappers ----------------------------------------------------------------------


class ResponseHeaders:
    """ASGI middleware adding `http_server_config.headers` to every response (an
    application's own value of the same header wins)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self._headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._headers:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self._headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def authorization_header(scope: Scope) -> str | None:
    """The request's `Authorization` value (latin-1, as HTTP headers are bytes)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class RequireAuthentication:
    """ASGI middleware answering 401 (`text/plain`) to requests that do not authenticate.

    For listeners whose apps have no error format of their own (the metrics listener); the
    admin API answers problem documents instead. `on_failure` is told of each failure, for
    counting; a warning is logged (rate-limited) without any secret.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        on_failure: Callable[[Scope, AuthFailure], None] | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self._on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.authenticator.required:
            await self.app(scope, receive, send)
            return
        outcome = await self.authenticator.authenticate(authorization_header(scope))
        if isinstance(outcome, Principal):
            await self.app(scope, receive, send)
            return
        self.authenticator.log_failure(scope, outcome)
        if self._on_failure is not None:
            self._on_failure(scope, outcome)
        body = b"Unauthorized\n"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *((b"www-authenticate", c.encode()) for c in self.authenticator.challenges),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def secure_app(
    app: ASGIApp,
    web_config: WebConfig,
    on_failure: Callable[[Scope, AuthFailure], None] | None = None,
) -> ASGIApp:
    """`app` behind the web config's authentication (if any) and response headers: what a
    listener without its own error format (the metrics listener) serves."""
    authenticated = RequireAuthentication(app, authenticator_for(web_config), on_failure)
    return ResponseHeaders(authenticated, web_config.http_server_config.headers)


def authenticator_for(web_config: WebConfig, realm: str = DEFAULT_REALM) -> Authenticator:
    """The authenticator of a listener configured by `web_config`."""
    return Authenticator(
        {
            name: hashed.get_secret_value().encode()
            for name, hashed in web_config.basic_auth_users.items()
        },
        web_config.bearer_tokens,
        realm=realm,
    )
