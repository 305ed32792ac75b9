"""The V3 (`ACS3-HMAC-SHA256`) request signature as an `httpx.Auth`.

httpx runs an auth flow once per request it sends, so every attempt of a call (retries
included) fetches the credential afresh (an STS token may have rotated meanwhile) and gets a
new nonce and date: the API refuses a reused nonce and a date more than 15 minutes off.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential, CredentialsProvider
from exporter.cloud.signing import EMPTY_BODY_SHA256, v3_authorization, v3_signature

API_VERSION = "2016-04-28"
"""The VPC API's version, sent in `x-acs-version`."""


def new_nonce() -> str:
    """A 128-bit random nonce: unique per request without any shared state."""
    return secrets.token_hex(16)


def acs_date(timestamp: float) -> str:
    """Format a Unix time as the `x-acs-date` value (`YYYY-MM-DDThh:mm:ssZ`, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def is_signed_header(name: str) -> bool:
    """Whether a V3 signature covers the header: `host`, every `x-acs-*` and `content-type`.

    Those are the ones the service requires to be signed. Transport headers (`Accept`,
    `Accept-Encoding`, `User-Agent`, `Content-Length`, `Connection`) stay unsigned, as the
    official SDK's async transport leaves some of them: a proxy or HTTP stack may rewrite
    them without breaking the signature.
    """
    return name in ("host", "content-type") or name.startswith("x-acs-")


def sign(
    request: httpx.Request,
    credential: Credential,
    *,
    action: str,
    timestamp: float,
    nonce: str,
    version: str = API_VERSION,
) -> None:
    """Add the `x-acs-*` headers and `Authorization` of a V3 signature to `request`.

    `request.content` must already be read (the payload hash covers it). Runs on every
    attempt of every call, so it touches `request.headers` (slow lookups) as little as it can.
    """
    body = request.content
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    added = {
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": acs_date(timestamp),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": payload_hash,
    }
    if credential.security_token:
        added["x-acs-security-token"] = credential.security_token
    headers = request.headers
    signed: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        name = raw_name.decode("ascii").lower()
        if is_signed_header(name):
            signed[name] = raw_value.decode(headers.encoding)
    if "host" not in signed:
        added["host"] = request.url.netloc.decode("ascii")
    signed |= added
    for name, value in added.items():
        headers[name] = value
    names, signature = v3_signature(
        credential.access_key_secret,
        request.method,
        request.url.path,
        request.url.params.multi_items(),
        signed,
        signed,
        payload_hash,
    )
    headers["authorization"] = v3_authorization(credential.access_key_id, names, signature)


class AcsV3Auth(httpx.Auth):
    """Signs one API action's requests with the current credential of a profile."""

    requires_request_body = True

    def __init__(
        self,
        credentials: CredentialsProvider,
        action: str,
        *,
        version: str = API_VERSION,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._credentials = credentials
        self._action = action
        self._version = version
        self._clock = clock
        self._nonce = nonce

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credential = await self._credential()
        await request.aread()
        sign(
            request,
            credential,
            action=self._action,
            timestamp=self._clock(),
            nonce=self._nonce(),
            version=self._version,
        )
        yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("AcsV3Auth fetches credentials asynchronously: use httpx.AsyncClient")

    async def _credential(self) -> Credential:
        try:
            return await self._credentials.get()
        except CredentialsError:
            raise
        except Exception as exc:
            # The provider's own errors name the failing source, never the secret.
            raise CredentialsError(
                self._action,
                f"no credential for profile {self._credentials.profile!r}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
