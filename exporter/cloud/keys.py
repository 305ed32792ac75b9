"""A resolved key pair and the protocol of what resolves one: all the signer and the
client need of credentials (`exporter.cloud.credentials` builds the providers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Credential:
    """One resolved key pair, with an STS token when the source issues temporary keys."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:
        return f"Credential(access_key_id={self.access_key_id!r}, access_key_secret='**********')"


class CredentialsProvider(Protocol):
    """Resolves (and refreshes) the credential of one named profile."""

    @property
    def profile(self) -> str:
        """The profile's name in the config (for logs and per-account rate budgets)."""
        ...

    async def get(self) -> Credential:
        """Return a currently valid credential; raise `CredentialsError` if there is none."""
        ...


class CredentialVerdicts(Protocol):
    """Told what the cloud made of a profile's credentials (see
    `exporter.cloud.profiles.MonitoredProvider`)."""

    def accepted(self) -> None:
        """The cloud answered a signed call past its credential check."""
        ...

    def rejected(self, reason: str) -> None:
        """The cloud refused the credentials themselves (`reason`: the error, no secret)."""
        ...
