"""Redaction of captured API answers: IP addresses, resource and account IDs and known
secrets become stable placeholders, and nothing else changes.

The capture exists to show the *shape* of real answers, so redaction works on the raw text
of every string (a description included, however it is encoded) and keeps what matters
for the shape: a placeholder keeps the kind of what it replaces (`<ipv4-1>`,
`vpn-redacted1`), one value always gets the same placeholder within a capture, and numbers
are replaced by digits of the same length so JSON stays JSON.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
RESOURCE_PREFIXES = (
    "vpndgn",
    "vpnpbr",
    "vpn",
    "vco",
    "vpc",
    "vsw",
    "vbr",
    "cgw",
    "cen",
    "tun",
    "tr",
    "rg",
    "ssl",
    "sag",
    "eni",
)
"""Alibaba Cloud resource ID prefixes an answer about VPN gateways may carry."""
_RESOURCE_ID = re.compile(
    rf"(?<![\w-])(?P<prefix>{'|'.join(RESOURCE_PREFIXES)})-(?P<rest>[0-9a-z]{{3,}}\**)(?![\w-])"
)
_ACCOUNT_ID = re.compile(r"(?<!\d)\d{16}(?!\d)")
"""An Alibaba Cloud account (UID) is 16 digits; a RAM ARN carries it (`acs:ram::UID:`)."""


class Redactor:
    """Replaces what identifies a user; the same value always gets the same placeholder."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}

    def _placeholder(self, kind: str, value: str, make: str) -> str:
        key = (kind, value)
        if key not in self._placeholders:
            number = self._counts[kind] = self._counts.get(kind, 0) + 1
            self._placeholders[key] = make.format(number)
        return self._placeholders[key]

    def text(self, text: str) -> str:
        """`text` with every secret, IP address, resource and account ID replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        text = _IPV4.sub(self._ipv4, text)
        text = _IPV6.sub(self._ipv6, text)
        text = _RESOURCE_ID.sub(self._resource, text)
        return _ACCOUNT_ID.sub(lambda m: self._placeholder("account", m.group(), "{:016d}"), text)

    def _ipv4(self, match: re.Match[str]) -> str:
        try:
            ipaddress.IPv4Address(match.group())
        except ValueError:
            return match.group()
        return self._placeholder("ipv4", match.group(), "<ipv4-{}>")

    def _ipv6(self, match: re.Match[str]) -> str:
        value = match.group()
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return value
        return self._placeholder("ipv6", value, "<ipv6-{}>")

    def _resource(self, match: re.Match[str]) -> str:
        prefix = match.group("prefix")
        return self._placeholder(prefix, match.group(), prefix + "-redacted{}")

    def value(self, value: Any) -> Any:
        """A JSON value with every string (and key) redacted; numbers and shapes kept."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value
