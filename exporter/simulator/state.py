"""What action handlers read and change: the fleet, diagnosis runs and the clock.

Action groups added later keep their own state as a `StateExtension`, one instance per
simulator: `call.state.extension(RouteTable)` creates it on first use.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

from exporter.simulator.clock import Clock
from exporter.simulator.fleet import Fleet, gateway_from_spec
from exporter.simulator.generator import expand
from exporter.simulator.runs import RunBook
from exporter.simulator.scenario import Scenario


class StateExtension:
    """Base of per-simulator state kept by an action group (e.g. route entries)."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state


E = TypeVar("E", bound=StateExtension)


def build_fleet(scenario: Scenario) -> Fleet:
    gateways = (gateway_from_spec(spec) for spec in scenario.gateways)
    if scenario.generate is None:
        return Fleet(gateways)
    return Fleet(itertools.chain(gateways, expand(scenario.generate)))


class SimulatorState:
    """The simulated cloud's state."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.fleet = build_fleet(scenario)
        self.runs = RunBook(scenario.diagnosis)
        self._extensions: dict[type[StateExtension], StateExtension] = {}

    def extension(self, kind: type[E]) -> E:
        """The one `kind` instance of this simulator, created on first use."""
        existing = self._extensions.get(kind)
        if existing is None:
            existing = self._extensions[kind] = kind(self)
        assert isinstance(existing, kind)
        return existing
