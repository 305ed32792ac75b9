"""Signature verification: V3 (`ACS3-HMAC-SHA256`, the SDK default) and V1 (`HMAC-SHA1`).

Canonicalisation is `exporter.cloud.signing`'s, shared with the exporter's client; the official
SDK judges both in the tests. The query is form-decoded, then re-encoded per RFC 3986 by
`signing.canonical_query`, because the SDK's async transport may re-normalise the query
on the wire (`+` for space, `%2F` as `/`) after signing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.cloud import signing
from exporter.simulator.clock import Clock, parse_api_time
from exporter.simulator.replies import ErrorReply
from exporter.simulator.scenario import KeyPair

MAX_CLOCK_SKEW = 15 * 60
"""Seconds a request's date may be off the server's clock (`InvalidTimeStamp.Expired` beyond)."""
MAX_NONCES = 1_000_000
"""A bound on remembered nonces whatever the request rate (the oldest go first)."""

V3_REQUIRED_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)
V1_REQUIRED_PARAMS = (
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as it arrived, reduced to what signatures cover."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    """Form-decoded query pairs, in arrival order."""
    headers: Mapping[str, str]
    """Lower-case names; repeated headers joined with `,` (as the SDK canonicalises them)."""
    body: bytes
    body_params: Sequence[tuple[str, str]]
    """Form-decoded body pairs (empty unless the body is form-encoded)."""

    @property
    def v3(self) -> bool:
        return "authorization" in self.headers


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made an authenticated call."""

    access_key_id: str
    account: str
    signature_version: str
    """`v3` or `v1`."""


@dataclass(frozen=True, slots=True)
class _Key:
    secret: str
    security_token: str | None
    account: str


class _NonceWindow:
    """Nonces of requests whose date is still acceptable.

    A nonce is kept until its request's date is more than `MAX_CLOCK_SKEW` in the past:
    a replay after that fails on its date (`InvalidTimeStamp.Expired`) anyway.
    """

    def __init__(self) -> None:
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()

    def use(self, access_key_id: str, nonce: str, sent: float, now: float) -> bool:
        """Record a nonce; False when it was used already."""
        expiry = self._expiry
        while expiry and (len(expiry) >= MAX_NONCES or next(iter(expiry.values())) < now):
            expiry.popitem(last=False)
        key = (access_key_id, nonce)
        if key in expiry:
            return False
        expiry[key] = sent + MAX_CLOCK_SKEW
        return True


def _incomplete(message: str) -> ErrorReply:
    return ErrorReply("IncompleteSignature", f"The request signature is incomplete: {message}.")


class Authenticator:
    """Verifies requests against the configured key pairs."""

    def __init__(self, key_pairs: Iterable[KeyPair], clock: Clock) -> None:
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._nonces = _NonceWindow()
        for key_pair in key_pairs:
            self.add(key_pair)

    def add(self, key_pair: KeyPair) -> None:
        token = key_pair.security_token
        self._keys[key_pair.access_key_id] = _Key(
            secret=key_pair.access_key_secret.get_secret_value(),
            security_token=token.get_secret_value() if token is not None else None,
            account=key_pair.account_id or key_pair.access_key_id,
        )

    def verify(self, request: WireRequest) -> Principal:
        """Return who signed the request, or raise the API's error for it."""
        if request.v3:
            return self._verify_v3(request)
        if any(name == "Signature" for name, _ in request.query):
            return self._verify_v1(request)
        raise _incomplete("no Authorization header and no Signature parameter")

    def _key(self, access_key_id: str) -> _Key:
        key = self._keys.get(access_key_id)
        if key is None:
            raise ErrorReply("InvalidAccessKeyId.NotFound")
        return key

    def _check_date(self, value: str, name: str) -> float:
        """The request's date, if within `MAX_CLOCK_SKEW` of the clock.

        The real gateway answers `InvalidTimeStamp.Format` for a date it cannot read and
        `InvalidTimeStamp.Expired` for one more than 15 minutes off either way (FACTS), with
        its fixed messages: `name` and the value are not quoted back.
        """
        try:
            sent = parse_api_time(value)
        except ValueError:
            raise ErrorReply("InvalidTimeStamp.Format") from None
        if abs(self._clock() - sent) > MAX_CLOCK_SKEW:
            raise ErrorReply("InvalidTimeStamp.Expired")
        return sent

    def _check_token(self, key: _Key, sent: str | None) -> None:
        if (sent or None) != key.security_token:
            raise ErrorReply("InvalidSecurityToken.Malformed")

    def _check_nonce(self, access_key_id: str, nonce: str, sent: float) -> None:
        if not self._nonces.use(access_key_id, nonce, sent, self._clock()):
            raise ErrorReply("SignatureNonceUsed")

    def _verify_v3(self, request: WireRequest) -> Principal:
        headers = request.headers
        fields = signing.parse_v3_authorization(headers["authorization"])
        if fields is None:
            raise _incomplete(
                f"the Authorization header is not `{signing.V3_ALGORITHM} "
                "Credential=…,SignedHeaders=…,Signature=…`"
            )
        key = self._key(fields["Credential"])
        signed = {name.strip().lower() for name in fields["SignedHeaders"].split(";")} - {""}
        for name in V3_REQUIRED_HEADERS:
            if name not in headers:
                raise _incomplete(f"the {name} header is missing")
        for name in headers:
            if (name == "host" or name.startswith("x-acs-")) and name not in signed:
                raise _incomplete(f"the {name} header is not signed")
        absent = sorted(signed - headers.keys())
        if absent:
            raise _incomplete(f"signed headers {', '.join(absent)} are not in the request")
        sent = self._check_date(headers["x-acs-date"], "x-acs-date")

        payload_hash = headers["x-acs-content-sha256"]
        if payload_hash != hashlib.sha256(request.body).hexdigest():
            raise ErrorReply(
                "SignatureDoesNotMatch", "x-acs-content-sha256 is not the SHA-256 of the body."
            )
        _, expected = signing.v3_signature(
            key.secret, request.method, request.path, request.query, headers, signed, payload_hash
        )
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise ErrorReply("SignatureDoesNotMatch")
        self._check_token(key, headers.get("x-acs-security-token"))
        self._check_nonce(fields["Credential"], headers["x-acs-signature-nonce"], sent)
        return Principal(fields["Credential"], key.account, "v3")

    def _verify_v1(self, request: WireRequest) -> Principal:
        pairs = [*request.query, *request.body_params]
        params = dict(pairs)
        for name in V1_REQUIRED_PARAMS:
            if not params.get(name):
                raise _incomplete(f"the {name} parameter is missing")
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            raise _incomplete("only SignatureMethod HMAC-SHA1, SignatureVersion 1.0 are supported")
        access_key_id = params["AccessKeyId"]
        key = self._key(access_key_id)
        sent = self._check_date(params["Timestamp"], "Timestamp")
        expected = signing.v1_signature(
            key.secret, request.method, [(k, v) for k, v in pairs if k != "Signature"]
        )
        if not hmac.compare_digest(expected, params["Signature"]):
            raise ErrorReply("SignatureDoesNotMatch")
        self._check_token(key, params.get("SecurityToken"))
        self._check_nonce(access_key_id, params["SignatureNonce"], sent)
        return Principal(access_key_id, key.account, "v1")
