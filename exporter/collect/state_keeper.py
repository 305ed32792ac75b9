"""Saving the latest-known state to the state file, and restoring it at start.

`StateKeeper` snapshots the fleet's records (immutable, so a snapshot is a list of
references), what each discovering target found and the pace each achieved, and writes
them off the event loop (`exporter.exposition.state_file`) every `state.interval` and once
more at shutdown. `restore` reads the file at start, before the first cycle; a missing file
is a first start, an unusable one is logged and ignored, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.clock import Clock
from exporter.collect.targets import TargetInventory
from exporter.config.model import StateConfig
from exporter.exposition.fleet import Fleet
from exporter.exposition.state_file import (
    SavedState,
    SavedTarget,
    StateFileError,
    load,
    save,
)

log = logging.getLogger(__name__)


class PaceSource(Protocol):
    """The pace each target achieved (`exporter.collect.scheduler.PollScheduler`)."""

    def achieved(self, name: str) -> float | None: ...


def read_state(settings: StateConfig) -> SavedState | None:
    """The saved state, or None (no state file configured, none yet, or unusable)."""
    if settings.path is None:
        return None
    try:
        state = load(settings.path, int(settings.max_size))
    except FileNotFoundError:
        log.info("no state file yet", extra={"fields": {"path": str(settings.path)}})
        return None
    except StateFileError as error:
        log.warning(
            "ignoring the state file: starting without the saved state",
            extra={"fields": {"path": str(settings.path), "error": str(error)}},
        )
        return None
    log.info(
        "restoring the saved state",
        extra={
            "fields": {
                "path": str(settings.path),
                "gateways": len(state.records),
                "saved_at": round(state.saved_at),
            }
        },
    )
    return state


class StateKeeper:
    """Saves the fleet's latest-known state to `settings.path` (nothing without one)."""

    def __init__(
        self,
        settings: StateConfig,
        fleet: Fleet,
        targets: Mapping[str, TargetInventory],
        pace: PaceSource,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.targets = targets
        self.pace = pace
        self.clock = clock
        self._lock = asyncio.Lock()

    def bind(self, jobs: AsyncIOScheduler) -> None:
        """Save every `state.interval` once `jobs` runs."""
        if self.settings.path is None:
            return
        jobs.add_job(
            self.save,
            IntervalTrigger(seconds=self.settings.interval),
            id="state:save",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def snapshot(self) -> SavedState:
        """The state as it stands (records are immutable: nothing is copied)."""
        return SavedState(
            saved_at=self.clock.time(),
            records=tuple(self.fleet.records.values()),
            targets={
                name: SavedTarget(
                    region_id=inventory.region_id,
                    profile=inventory.target.credentials,
                    discovered=inventory.discovered,
                    effective_interval=self.pace.achieved(name),
                )
                for name, inventory in self.targets.items()
            },
        )

    async def save(self) -> None:
        """Write the state file (encoding and writing run in a thread); failures are
        logged, never raised."""
        path = self.settings.path
        if path is None:
            return
        state = self.snapshot()
        async with self._lock:
            try:
                size = await asyncio.to_thread(save, path, state, int(self.settings.max_size))
            except (StateFileError, OSError, ValueError) as error:
                log.error(
                    "cannot save the state file",
                    extra={"fields": {"path": str(path), "error": str(error)}},
                )
                return
        log.debug(
            "state saved",
            extra={"fields": {"path": str(path), "bytes": size, "gateways": len(state.records)}},
        )
