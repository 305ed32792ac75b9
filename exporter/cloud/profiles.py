"""Credentials profiles at run time: whether each one works, said once per change.

A profile that cannot resolve credentials (a wrong role ARN, an STS endpoint out of
reach, an expired OIDC token) fails only the targets that name it: their calls raise a
`CredentialsError` before anything is sent. `MonitoredProvider` wraps a profile's provider
so that the failure is logged once for the profile, with the library's reason and the
targets it stops, instead of once per gateway, and exported as
`aliyun_vpn_credentials_success{profile}`; recovery is logged once too.

Credentials that resolve may still be refused by the cloud (a wrong secret, a deleted
AccessKey, an expired STS token): the clients report those verdicts here
(`CredentialVerdicts`), so the gauge is 0 until a call gets past the cloud's check again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from exporter.cloud.errors import CredentialsError
from exporter.cloud.keys import Credential, CredentialsProvider
from exporter.telemetry.self_metrics import SelfMetrics

log = logging.getLogger(__name__)

_REQUEST_IDS = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
"""Request IDs in a failure's text: the same failure again is not a new condition."""


class MonitoredProvider:
    """A `CredentialsProvider` (and `CredentialVerdicts`) that reports its profile's
    health: 1 while the credentials resolve and the cloud accepts them."""

    def __init__(
        self, provider: CredentialsProvider, metrics: SelfMetrics, targets: Sequence[str] = ()
    ) -> None:
        self._provider = provider
        self._targets = tuple(targets)
        self._metrics = metrics
        # No series until the profile is first used: a profile no target uses, or one not
        # tried yet, must not read as failing.
        self._failure: str | None = None
        self._rejection: str | None = None
        self._ever_resolved = False

    @property
    def profile(self) -> str:
        return self._provider.profile

    @property
    def failure(self) -> str | None:
        """Why the profile failed the last time it was needed (None: it worked), request
        IDs left out."""
        return self._failure or self._rejection

    async def get(self) -> Credential:
        try:
            credential = await self._provider.get()
        except CredentialsError as error:
            self._failed(str(error), error.advice)
            raise
        if self._failure is not None or not self._ever_resolved:
            if self._failure is not None:
                log.info(
                    "credentials profile recovered",
                    extra={"fields": {"profile": self.profile}},
                )
            self._failure = None
            self._ever_resolved = True
            self._set(0 if self._rejection else 1)
        return credential

    def _set(self, value: int) -> None:
        self._metrics.credentials_success.labels(self.profile).set(value)

    def accepted(self) -> None:
        """A call got past the cloud's credential check."""
        if self._rejection is None:
            return
        self._rejection = None
        log.info("credentials accepted again", extra={"fields": {"profile": self.profile}})
        self._set(0 if self._failure else 1)

    def rejected(self, reason: str) -> None:
        """The cloud refused the credentials; logged once per change of reason."""
        self._set(0)
        condition = _REQUEST_IDS.sub("<request id>", reason)
        if condition == self._rejection:
            return
        self._rejection = condition
        log.error(
            "the cloud rejects the credentials of the profile: its targets get no data "
            "until they are fixed",
            extra={
                "fields": {
                    "profile": self.profile,
                    "targets": ",".join(self._targets),
                    "error": reason,
                }
            },
        )

    def _failed(self, reason: str, advice: str | None = None) -> None:
        self._set(0)
        condition = _REQUEST_IDS.sub("<request id>", reason)
        if condition == self._failure:
            return
        self._failure = condition
        log.error(
            "credentials profile failed: "
            + (advice or "its targets cannot call the API until it recovers"),
            extra={
                "fields": {
                    "profile": self.profile,
                    "targets": ",".join(self._targets),
                    "error": reason,
                }
            },
        )
