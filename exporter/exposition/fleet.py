"""The fleet: every polled gateway's current record, kept in step with the exposition.

The fleet is the only writer of gateway records. Each change swaps in a new immutable
record and re-renders that gateway alone. Records keep the latest known data (DESIGN
"Failure semantics"); only when the operator set `poll.stale_after` does a periodic sweep
re-render the gateways whose data went stale, so that their old series disappear even
when polls keep failing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from exporter.exposition.label_bounds import LabelBounds
from exporter.exposition.records import GatewayKey, GatewayRecord, TargetRecord
from exporter.exposition.render import (
    Exposition,
    render_gateway,
    render_inventory,
    render_target,
)


class Fleet:
    """Gateway records by key, their staleness bound per target, and the exposition."""

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition
        self.labels = LabelBounds()
        """The bounded label values from the API, for every render and self-metric."""
        self._records: dict[GatewayKey, GatewayRecord] = {}
        self._targets: dict[str, TargetRecord] = {}
        self._stale_after: dict[str, float | None] = {}
        self._expiry: dict[GatewayKey, float] = {}

    @property
    def records(self) -> Mapping[GatewayKey, GatewayRecord]:
        """Read-only view of the current records (for the status page)."""
        return self._records

    @property
    def targets(self) -> Mapping[str, TargetRecord]:
        """Read-only view of the targets' own records."""
        return self._targets

    def get(self, key: GatewayKey) -> GatewayRecord:
        return self._records.get(key) or GatewayRecord(key)

    def configure_target(
        self,
        target: TargetRecord,
        keys: Iterable[GatewayKey],
        *,
        stale_after: float | None = None,
    ) -> None:
        """Set a target's settings and gateways; gateways no longer listed lose all their
        series. The achieved pace and last launch known so far are kept when `target`
        carries none."""
        self._stale_after[target.name] = stale_after
        wanted = set(keys)
        for key in [k for k in self._records if k.target == target.name and k not in wanted]:
            self.forget(key)
        for key in wanted:
            if key not in self._records:
                self._records[key] = GatewayRecord(key)
        previous = self._targets.get(target.name)
        if previous is not None and target.last_launch_at is None:
            target = replace(target, last_launch_at=previous.last_launch_at)
        self._put_target(target)

    def restore(self, records: Iterable[GatewayRecord], now: float) -> None:
        """Take saved records (a state file's, at start) as the gateways' latest known
        state, timestamps and all."""
        for record in records:
            self._records[record.key] = record
            self._render(record, now)

    def set_pace(
        self,
        target: str,
        *,
        effective_interval: float | None = None,
        last_launch_at: float | None = None,
    ) -> None:
        """Record a target's achieved pace or its latest launch (None: unchanged)."""
        record = self._targets.get(target)
        if record is None:
            return
        if effective_interval is not None:
            record = replace(record, effective_interval=effective_interval)
        if last_launch_at is not None:
            record = replace(record, last_launch_at=last_launch_at)
        self._put_target(record)

    def _put_target(self, target: TargetRecord) -> None:
        self._targets[target.name] = target
        self.exposition.put(("target", target.name), render_target(target))

    def retain_targets(self, targets: Collection[str]) -> None:
        """Stop exporting every target not in `targets` (a reload removed them)."""
        for key in [k for k in self._records if k.target not in targets]:
            self.forget(key)
        for target in [t for t in self._targets if t not in targets]:
            del self._targets[target]
            self._stale_after.pop(target, None)
            self.exposition.remove(("target", target))

    def set_target_inventory(
        self, target: str, gateways: int, listings: Mapping[str, tuple[bool, float | None]]
    ) -> None:
        """Export a target's gateway count and how its listings went (see
        `render_inventory`)."""
        self.exposition.put(("inventory", target), render_inventory(target, gateways, listings))

    def remove_target_inventory(self, target: str) -> None:
        """Stop exporting a target's listing series (a reload's inventory replaces them)."""
        self.exposition.remove(("inventory", target))

    def forget(self, key: GatewayKey) -> None:
        """Stop exporting a gateway."""
        self._records.pop(key, None)
        self._expiry.pop(key, None)
        self.exposition.remove(key)

    def update(self, record: GatewayRecord, now: float) -> None:
        """Swap in a gateway's new record and re-render it."""
        if record.key not in self._records:
            return  # removed from the configuration while its poll was in flight
        self._render(record, now)

    def sweep(self, now: float) -> None:
        """Re-render the gateways whose data went stale since their last change."""
        due = [key for key, expiry in self._expiry.items() if expiry <= now]
        for key in due:
            self._render(self._records[key], now)

    def _render(self, record: GatewayRecord, now: float) -> None:
        """Store `record` without its stale data (only with `poll.stale_after` set) and
        render it."""
        stale_after = self._stale_after.get(record.key.target)
        current = record.current(stale_after, now)
        self._records[record.key] = current
        expiry = current.expires_at(stale_after)
        if expiry is None:
            self._expiry.pop(record.key, None)
        else:
            self._expiry[record.key] = expiry
        self.exposition.put(record.key, render_gateway(current, self.labels))
