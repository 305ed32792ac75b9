"""Alibaba Cloud request signing: the V3 (`ACS3-HMAC-SHA256`) and V1 (`HMAC-SHA1`) schemes.

This module is pure protocol: the exporter's client signs with it and the simulator verifies
with it. The official SDK (`alibabacloud_tea_openapi.utils`) is the independent judge of
both in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: unreserved `A-Za-z0-9-_.~` kept, everything else `%XX` (UTF-8)."""
    return quote(value, safe="~", encoding="utf-8")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Pairs sorted by name (then value), names and values RFC 3986-encoded, joined by `&`."""
    encoded = sorted((percent_encode(name), percent_encode(value)) for name, value in params)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Mapping[str, str], signed: Iterable[str]) -> tuple[str, str]:
    """Return the canonical header block and the `SignedHeaders` list for `signed` names.

    `headers` must be keyed by lower-case names.
    """
    names = sorted({name.lower() for name in signed})
    block = "".join(f"{name}:{headers[name].strip()}\n" for name in names)
    return block, ";".join(names)


def v3_signature(
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_sha256: str = EMPTY_BODY_SHA256,
) -> tuple[str, str]:
    """Compute the V3 signature; return `(signed header names, hex signature)`."""
    header_block, signed = canonical_headers(headers, signed_headers)
    canonical_request = "\n".join(
        [method.upper(), path or "/", canonical_query(query), header_block, signed, payload_sha256]
    )
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{V3_ALGORITHM}\n{digest}"
    signature = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256)
    return signed, signature.hexdigest()


def v3_authorization(access_key_id: str, signed_headers: str, signature: str) -> str:
    """Format the `Authorization` header value of a V3 request."""
    return (
        f"{V3_ALGORITHM} Credential={access_key_id},"
        f"SignedHeaders={signed_headers},Signature={signature}"
    )


def parse_v3_authorization(value: str) -> dict[str, str] | None:
    """Split an `ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…` header.

    Returns None when the header is not of that form.
    """
    prefix = V3_ALGORITHM + " "
    if not value.startswith(prefix):
        return None
    fields: dict[str, str] = {}
    for part in value[len(prefix) :].split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep:
            return None
        fields[name] = field_value
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def v1_signature(secret: str, method: str, params: Iterable[tuple[str, str]]) -> str:
    """The V1 (`SignatureMethod=HMAC-SHA1`) signature over all parameters but `Signature`."""
    string_to_sign = (
        f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"
    )
    key = (secret + "&").encode("utf-8")
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
