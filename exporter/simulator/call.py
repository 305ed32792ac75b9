"""One authenticated API call as action handlers see it, and the handler contract.

A handler is `(Call) -> dict`: it reads `call.params`, reads or changes `call.state`, and
returns the response body without `RequestId` (the pipeline adds it), or raises
`ErrorReply` for a documented error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.simulator.faults import Fault, FaultKind
from exporter.simulator.replies import ErrorReply
from exporter.simulator.state import SimulatorState

MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 10
MAX_TAGS = 20


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    size: int


@dataclass(frozen=True, slots=True)
class Call:
    action: str
    params: Mapping[str, str]
    state: SimulatorState
    access_key_id: str
    now: float
    """The simulator clock when the call arrived."""
    faults: tuple[Fault, ...] = ()
    """Faults that fired on this call and alter (rather than replace) the answer."""

    def param(self, name: str) -> str | None:
        """A parameter's value, None when absent or empty."""
        return self.params.get(name) or None

    def require(self, name: str) -> str:
        value = self.param(name)
        if value is None:
            raise ErrorReply.missing(name)
        return value

    @property
    def region_id(self) -> str:
        return self.require("RegionId")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.param(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ErrorReply.invalid(name, raw) from None
        if not low <= value <= high:
            raise ErrorReply.invalid(name, raw)
        return value

    def page(self) -> Page:
        return Page(
            number=self.integer("PageNumber", 1, 1, 10**9),
            size=self.integer("PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        )

    def tags(self) -> list[tuple[str, str | None]]:
        """`Tag.N.Key` / `Tag.N.Value` pairs (N from 1 to 20)."""
        tags = []
        for n in range(1, MAX_TAGS + 1):
            key = self.param(f"Tag.{n}.Key")
            if key is not None:
                tags.append((key, self.param(f"Tag.{n}.Value")))
        return tags

    def fault(self, kind: FaultKind) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind), None)


Handler = Callable[[Call], dict[str, Any]]
