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
from exporter.exposition.records import GatewayKey


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
    stale_after: float
    jitter: float = 0.0
    startup_spacing: float = 0.0
    """Seconds between polls in the first cycle: the budget's pace, so that data arrives
    soon after start instead of being spread over a whole interval."""
    keys: list[GatewayKey] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [GatewayKey(self.name, self.region_id, g) for g in self.gateways]
