"""The action registry: every API action the simulator answers, by name.

Each group of actions lives in its own module exporting `ACTIONS: dict[str, Handler]`;
adding a group is adding its module to `GROUPS`. An action answered by no group is
`InvalidAction.NotFound` (404), as the real API answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from exporter.simulator import diagnose, gateways, routes
from exporter.simulator.call import Handler

API_VERSION = "2016-04-28"

GROUPS: tuple[ModuleType, ...] = (diagnose, gateways, routes)


def _merge(groups: tuple[ModuleType, ...]) -> dict[str, Handler]:
    actions: dict[str, Handler] = {}
    for group in groups:
        handlers: Mapping[str, Handler] = group.ACTIONS
        clash = actions.keys() & handlers.keys()
        if clash:
            raise RuntimeError(f"{group.__name__} registers {sorted(clash)} again")
        actions.update(handlers)
    return actions


ACTIONS: dict[str, Handler] = _merge(GROUPS)
