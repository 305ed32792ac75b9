"""Diagnosis runs: when each diagnosis began, how far it got, and which is a gateway's latest.

Two sources of runs:
- *standing* runs: a gateway with `has_diagnosis` is re-diagnosed every
  `rediagnose_every` seconds. They are computed, not stored: the run of the current
  period is derived from the clock (always already finished), and its ID from the gateway
  and the period, so serving 10,000 gateways keeps no per-gateway history.
- *started* runs (DiagnoseVpnGateway): stored; from then on the gateway's latest is its
  latest started run, and standing runs stop for that gateway.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass

from exporter.simulator.fleet import Connection, Gateway
from exporter.simulator.items import TOTAL_ITEMS
from exporter.simulator.scenario import DiagnosisSettings

_STANDING_IDS_KEPT = 100_000
"""How many served standing-run IDs stay answerable by DiagnoseId (oldest forgotten first)."""


def diagnose_id(*parts: object) -> str:
    """`vpndgn-` and 21 lower-case alphanumerics, derived from `parts`."""
    digest = int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:16])
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    chars = []
    for _ in range(21):
        digest, rest = divmod(digest, 36)
        chars.append(alphabet[rest])
    return "vpndgn-" + "".join(chars)


@dataclass(slots=True, eq=False)
class DiagnosisRun:
    """One diagnosis of one IPsec connection of a gateway."""

    diagnose_id: str
    gateway: Gateway
    connection: Connection
    begin: float
    duration: float
    stalled: bool = False
    """Never finishes: progress stops one item short."""
    private_ips: tuple[str, str] | None = None
    """(PrivateSourceIp, PrivateDestinationIp) from `IPsecExtendInfo`."""

    def finished_count(self, now: float, *, stalled: bool = False) -> int:
        cap = TOTAL_ITEMS - 1 if (stalled or self.stalled) else TOTAL_ITEMS
        if self.duration <= 0:
            return cap
        done = math.floor(TOTAL_ITEMS * (now - self.begin) / self.duration)
        return max(0, min(done, cap))

    @property
    def finish_time(self) -> float:
        return self.begin + self.duration


class RunBook:
    """The diagnosis runs of a simulator."""

    def __init__(self, settings: DiagnosisSettings) -> None:
        self._settings = settings
        self._started: dict[str, DiagnosisRun] = {}
        self._latest_started: dict[str, DiagnosisRun] = {}
        self._standing: OrderedDict[str, DiagnosisRun] = OrderedDict()
        self._sequence = itertools.count(1)

    def _standing_run(self, gateway: Gateway, now: float) -> DiagnosisRun | None:
        if not gateway.has_diagnosis:
            return None
        period = math.floor(now / self._settings.rediagnose_every)
        finish = period * self._settings.rediagnose_every
        run_id = diagnose_id("standing", gateway.id, period)
        run = self._standing.get(run_id)
        if run is None:
            run = DiagnosisRun(
                diagnose_id=run_id,
                gateway=gateway,
                connection=gateway.connections[0],
                begin=finish - self._settings.duration,
                duration=self._settings.duration,
            )
            self._standing[run_id] = run
            if len(self._standing) > _STANDING_IDS_KEPT:
                self._standing.popitem(last=False)
        return run

    def latest(self, gateway: Gateway, now: float) -> DiagnosisRun | None:
        """The gateway's latest diagnosis, or None when it has none."""
        return self._latest_started.get(gateway.id) or self._standing_run(gateway, now)

    def get(self, run_id: str) -> DiagnosisRun | None:
        return self._started.get(run_id) or self._standing.get(run_id)

    def start(
        self,
        gateway: Gateway,
        connection: Connection,
        now: float,
        *,
        private_ips: tuple[str, str] | None = None,
        stalled: bool = False,
    ) -> DiagnosisRun:
        run = DiagnosisRun(
            diagnose_id=diagnose_id(
                "started", gateway.id, connection.id, now, next(self._sequence)
            ),
            gateway=gateway,
            connection=connection,
            begin=now,
            duration=self._settings.duration,
            stalled=stalled,
            private_ips=private_ips,
        )
        self._started[run.diagnose_id] = run
        self._latest_started[gateway.id] = run
        return run
