"""The request journal: what the simulator was asked and what it answered, for tests."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

SIGNATURE_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "Timestamp",
        "SignatureNonce",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureType",
        "AccessKeyId",
        "Signature",
        "SecurityToken",
    }
)
"""V1 protocol parameters, left out of `RecordedRequest.params`."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request: the action's own parameters and the outcome."""

    action: str
    params: dict[str, str]
    access_key_id: str | None
    """None when the request was rejected before its key was known."""
    status: int | None
    """The HTTP status; None when no answer was sent (reset, timeout)."""
    code: str | None
    """The error `Code`; None on success."""
    signature_version: str | None
    faults: tuple[str, ...]
    """Kinds of the injected faults that fired on this request."""
    time: float
    """The simulator clock on arrival."""


@dataclass(slots=True)
class Journal:
    """The last `size` requests, with per-action counters over all of them."""

    size: int = 10_000
    requests: deque[RecordedRequest] = field(init=False)
    calls: Counter[str] = field(default_factory=Counter)
    """Requests by action, failures included."""
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Failed requests by (action, code)."""

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.size)

    def record(self, entry: RecordedRequest) -> None:
        self.requests.append(entry)
        self.calls[entry.action] += 1
        if entry.code is not None:
            self.failures[(entry.action, entry.code)] += 1

    def clear(self) -> None:
        """Forget every request and count (a test's fresh start)."""
        self.requests.clear()
        self.calls.clear()
        self.failures.clear()
