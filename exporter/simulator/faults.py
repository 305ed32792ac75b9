"""Fault injection: what can go wrong between a client and the API, switchable at run time.

A `Fault` is scoped to an action and/or a gateway (None: any), can fire on every k-th
matching call (`every`) and at most `times` times. Faults are installed from the scenario,
from Python (`simulator.faults.add(Fault.throttle(action=...))`) or over HTTP
(`POST /_simulator/faults` with the same fields as JSON).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultKind(StrEnum):
    LATENCY = "latency"
    """Wait `seconds` (default 1), then answer normally."""
    ERROR = "error"
    """Answer a documented error body: 5xx, credential failures, `VpnGateway.Configuring`…"""
    THROTTLE = "throttle"
    """`Throttling.User` (HTTP 400), with `x-acs-retry-after` when `retry_after_ms` is set."""
    TIMEOUT = "timeout"
    """Say nothing for `seconds` (default an hour, longer than any client timeout), then
    drop the connection."""
    RESET = "reset"
    """Reset the connection without an answer."""
    TRUNCATED_JSON = "truncated_json"
    """HTTP 200 with the JSON body cut in half (a complete HTTP message, malformed JSON)."""
    HTML = "html"
    """An HTML error page, as a proxy or load balancer would send (default 502)."""
    BAD_DESCRIPTION = "bad_description"
    """GetVpnGatewayDiagnoseResult: a malformed `DiagnoseResultDescription` (see `mode`)."""
    NEVER_FINISH = "never_finish"
    """The diagnosis stays running: a DiagnoseVpnGateway run never completes, and a
    GetVpnGatewayDiagnoseResult answer shows its diagnosis unfinished."""
    RESET_MID_BODY = "reset_mid_body"
    """The normal answer's headers and half its body, then a reset (`streams`)."""
    HUGE_BODY = "huge_body"
    """HTTP 200 with a chunked JSON body of `size` bytes (default 50 MB) (`streams`)."""
    DRIP = "drip"
    """HTTP 200, then a byte every `seconds` (default 1), never finished (`streams`)."""


TERMINAL_KINDS = frozenset(
    {
        FaultKind.ERROR,
        FaultKind.THROTTLE,
        FaultKind.TIMEOUT,
        FaultKind.RESET,
        FaultKind.HTML,
        FaultKind.HUGE_BODY,
        FaultKind.DRIP,
    }
)
"""Faults that replace the answer; the others delay or alter a normal answer."""


class DescriptionMode(StrEnum):
    """How a `bad_description` fault mangles `DiagnoseResultDescription`."""

    GARBAGE = "garbage"
    """Not JSON at all."""
    WRONG_TYPE = "wrong_type"
    """Valid JSON that is not an object (a list)."""
    NESTED_GARBAGE = "nested_garbage"
    """An object whose documented keys hold nonsense: objects, lists, "NaN", negatives."""
    DOUBLY_ENCODED = "doubly_encoded"
    """A JSON string whose content is the JSON object, as in the API page's sample."""
    NUMBERS_AS_STRINGS = "numbers_as_strings"
    """The right object with every number written as a string."""
    NOT_A_STRING = "not_a_string"
    """The field itself is a JSON object instead of a string."""
    EMPTY = "empty"
    """An empty string."""


_FIELDS_OF_KIND: dict[FaultKind, frozenset[str]] = {
    FaultKind.LATENCY: frozenset({"seconds"}),
    FaultKind.ERROR: frozenset({"status", "code", "message"}),
    FaultKind.THROTTLE: frozenset({"retry_after_ms", "code"}),
    FaultKind.TIMEOUT: frozenset({"seconds"}),
    FaultKind.RESET: frozenset(),
    FaultKind.TRUNCATED_JSON: frozenset(),
    FaultKind.HTML: frozenset({"status"}),
    FaultKind.BAD_DESCRIPTION: frozenset({"mode", "item"}),
    FaultKind.NEVER_FINISH: frozenset(),
    FaultKind.RESET_MID_BODY: frozenset(),
    FaultKind.HUGE_BODY: frozenset({"size"}),
    FaultKind.DRIP: frozenset({"seconds"}),
}
_KIND_FIELDS = frozenset().union(*_FIELDS_OF_KIND.values())


class Fault(BaseModel):
    """One fault: its kind, its scope and the kind's own settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    action: str | None = None
    gateway: str | None = None
    """A `VpnGatewayId`; calls by `DiagnoseId` or `VpnConnectionId` match their gateway."""
    every: int = Field(default=1, ge=1)
    times: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, ge=0)
    status: int | None = Field(default=None, ge=400, le=599)
    code: str | None = None
    message: str | None = None
    retry_after_ms: int | None = Field(default=None, ge=1)
    mode: DescriptionMode | None = None
    item: str | None = None
    """The `DiagnoseName` a bad description applies to (None: every item)."""
    size: int | None = Field(default=None, ge=1)
    """Bytes of a `huge_body` answer."""

    @model_validator(mode="after")
    def _only_fields_of_its_kind(self) -> Self:
        foreign = {
            name
            for name in _KIND_FIELDS - _FIELDS_OF_KIND[self.kind]
            if getattr(self, name) is not None
        }
        if foreign:
            raise ValueError(f"{sorted(foreign)} do not apply to a {self.kind.value} fault")
        return self

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

    def matches(self, action: str, gateway: str | None) -> bool:
        return (self.action is None or self.action == action) and (
            self.gateway is None or self.gateway == gateway
        )

    # Typed constructors; `scope` is action=, gateway=, every=, times=.
    @classmethod
    def latency(cls, seconds: float, **scope: Any) -> Fault:
        return cls(kind=FaultKind.LATENCY, seconds=seconds, **scope)

    @classmethod
    def error(cls, code: str | None = None, *, status: int | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.ERROR, code=code, status=status, **scope)

    @classmethod
    def throttle(cls, *, retry_after_ms: int | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.THROTTLE, retry_after_ms=retry_after_ms, **scope)

    @classmethod
    def timeout(cls, seconds: float | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.TIMEOUT, seconds=seconds, **scope)

    @classmethod
    def reset(cls, **scope: Any) -> Fault:
        return cls(kind=FaultKind.RESET, **scope)

    @classmethod
    def truncated_json(cls, **scope: Any) -> Fault:
        return cls(kind=FaultKind.TRUNCATED_JSON, **scope)

    @classmethod
    def html(cls, *, status: int | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.HTML, status=status, **scope)

    @classmethod
    def bad_description(
        cls, mode: DescriptionMode, *, item: str | None = None, **scope: Any
    ) -> Fault:
        return cls(kind=FaultKind.BAD_DESCRIPTION, mode=mode, item=item, **scope)

    @classmethod
    def never_finish(cls, **scope: Any) -> Fault:
        return cls(kind=FaultKind.NEVER_FINISH, **scope)

    @classmethod
    def reset_mid_body(cls, **scope: Any) -> Fault:
        return cls(kind=FaultKind.RESET_MID_BODY, **scope)

    @classmethod
    def huge_body(cls, size: int | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.HUGE_BODY, size=size, **scope)

    @classmethod
    def drip(cls, seconds: float | None = None, **scope: Any) -> Fault:
        return cls(kind=FaultKind.DRIP, seconds=seconds, **scope)


@dataclass(slots=True)
class InstalledFault:
    """A fault in force, with how often it matched and fired."""

    id: int
    fault: Fault
    matched: int = 0
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.fault.times is not None and self.fired >= self.fault.times

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matched": self.matched,
            "fired": self.fired,
            **self.fault.model_dump(mode="json", exclude_none=True),
        }


class FaultInjector:
    """The faults in force. Thread-safe: tests change faults while a server thread serves."""

    def __init__(self, faults: list[Fault] | tuple[Fault, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._active: list[InstalledFault] = []
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> InstalledFault:
        with self._lock:
            installed = InstalledFault(next(self._ids), fault)
            self._active.append(installed)
            return installed

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._active)
            self._active = [f for f in self._active if f.id != fault_id]
            return len(self._active) != before

    def clear(self) -> None:
        with self._lock:
            self._active = []

    def installed(self) -> list[InstalledFault]:
        with self._lock:
            return list(self._active)

    def fire(self, action: str, gateway: str | None) -> list[Fault]:
        """Count this call against every matching fault; return those that fire on it."""
        if not self._active:
            return []
        fired: list[Fault] = []
        with self._lock:
            for installed in self._active:
                if not installed.fault.matches(action, gateway):
                    continue
                installed.matched += 1
                if installed.matched % installed.fault.every == 0:
                    installed.fired += 1
                    fired.append(installed.fault)
            self._active = [f for f in self._active if not f.exhausted]
        return fired
