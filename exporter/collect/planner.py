"""Budget planning: how often each job can run inside the API rate budgets it shares.

Every scheduled job (a target's poll cycle, its scheduled diagnoses) wants some calls of
some actions once per configured interval. Jobs whose calls count against the same
(account, region, action) budget share it in proportion to what they want: when they
want more than the budget gives, every one of them is stretched by the same factor, so a
1-minute target of ten gateways keeps its minute beside a 1-hour target of a thousand
when both fit, and both slow down together when they do not. A job that calls several
actions is stretched by the tightest of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from exporter.cloud.actions import DiagnosisSource
from exporter.exposition.records import GatewayKey, TargetRecord


@dataclass(frozen=True, slots=True)
class Demand:
    """What one job wants: `calls` per action every `interval` seconds, from `budget`
    (an account and region)."""

    job: str
    budget: Hashable
    interval: float
    calls: Mapping[str, float]


def stretch_factors(
    demands: Iterable[Demand], rate_per_second: Callable[[str], float]
) -> dict[tuple[Hashable, str], float]:
    """How much each (budget, action) must slow its jobs down (1.0: not at all).

    `rate_per_second(action)` is the budget of one account and region for `action`.
    """
    wanted: dict[tuple[Hashable, str], float] = {}
    for demand in demands:
        for action, calls in demand.calls.items():
            if calls > 0 and demand.interval > 0:
                key = (demand.budget, action)
                wanted[key] = wanted.get(key, 0.0) + calls / demand.interval
    factors = {}
    for (budget, action), per_second in wanted.items():
        rate = rate_per_second(action)
        factors[(budget, action)] = max(1.0, per_second / rate) if rate > 0 else 1.0
    return factors


def effective_intervals(
    demands: Iterable[Demand], rate_per_second: Callable[[str], float]
) -> dict[str, float]:
    """The interval each job can actually keep, by job name."""
    demands = list(demands)
    factors = stretch_factors(demands, rate_per_second)
    intervals = {}
    for demand in demands:
        factor = max(
            (
                factors[(demand.budget, action)]
                for action, calls in demand.calls.items()
                if calls > 0
            ),
            default=1.0,
        )
        intervals[demand.job] = demand.interval * factor
    return intervals


@dataclass
class TargetPlan:
    """What one target polls, through which client, and how often."""

    name: str
    region_id: str
    gateways: Sequence[str]
    client: DiagnosisSource
    interval: float
    effective_interval: float
    """The planned pace: the interval, stretched when the budget is short."""
    stale_after: float | None = None
    """`poll.stale_after`: None keeps the latest known data however old."""
    jitter: float = 0.0
    startup_spacing: float = 0.0
    """Seconds between polls in the first cycle: the budget's pace, so that data arrives
    soon after start instead of being spread over a whole interval."""
    profile: str = ""
    """The credentials profile of the target's client."""
    diagnose_interval: float | None = None
    """The scheduled-diagnosis interval (None: off)."""
    diagnose_max_age: float | None = None
    """Age after which a finished diagnosis counts as stale."""
    keys: list[GatewayKey] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [GatewayKey(self.name, self.region_id, g) for g in self.gateways]

    def record(self, effective_interval: float | None = None) -> TargetRecord:
        """The target's own exported record; `effective_interval` is the achieved pace
        when one was measured (else the planned one is shown)."""
        return TargetRecord(
            name=self.name,
            profile=self.profile,
            region_id=self.region_id,
            interval=self.interval,
            effective_interval=(
                self.effective_interval if effective_interval is None else effective_interval
            ),
            diagnose_interval=self.diagnose_interval,
            diagnose_max_age=self.diagnose_max_age,
        )
