"""Log lines about what clients do, bounded whatever the clients do.

One client can make thousands of failed logins or refused connections a second; a line for
each would flood the log (and the disk) and bury everything else. `LogLimiter` logs the
first event of a key (usually a client address) at once, with its details, then only
counts that key's events and writes one summary line per window while they go on
("N failed authentication attempts from ADDR in the last 60 s"). When a window passes
without events, the key is forgotten and its next event logs at once again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WINDOW = 60.0
"""Seconds a key's events are summed up in one line."""
MAX_KEYS = 1024
"""Keys tracked at once; events of further keys share one `OTHER` key."""
OTHER = "other"


@dataclass(slots=True)
class _Window:
    fields: Mapping[str, Any]
    count: int = 0
    handle: asyncio.TimerHandle | None = field(default=None, repr=False)


class LogLimiter:
    """One line per key at first, then one summary line per window (see the module).

    `summary` is the message of the summary lines; their fields are the first event's
    `key_fields`, `count` (the events since the last line) and `window_seconds`.
    """

    def __init__(
        self,
        logger: logging.Logger,
        summary: str,
        *,
        window: float | None = None,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """`window`: seconds of one summary (default `WINDOW`)."""
        self._log = logger
        self._summary = summary
        self.window = WINDOW if window is None else window
        self._max_keys = max_keys
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def event(
        self,
        key: str,
        level: int,
        message: str,
        key_fields: Mapping[str, Any],
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """An event of `key`: logged now (with `details`) if the key is quiet, else counted."""
        with self._lock:
            if key not in self._windows and len(self._windows) >= self._max_keys:
                key, key_fields = OTHER, {"remote_addr": OTHER}
            window = self._windows.get(key)
            if window is not None:
                window.count += 1
                return
            window = self._windows[key] = _Window(dict(key_fields))
            window.handle = self._schedule(key)
        self._log.log(level, message, extra={"fields": {**key_fields, **(details or {})}})

    def _schedule(self, key: str) -> asyncio.TimerHandle | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing to sum up later
            self._windows.pop(key, None)
            return None
        return loop.call_later(self.window, self._flush, key)

    def _flush(self, key: str) -> None:
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                return
            if window.count == 0:
                del self._windows[key]
                return
            count, window.count = window.count, 0
            window.handle = self._schedule(key)
            fields = window.fields
        self._log.warning(
            self._summary,
            extra={"fields": {**fields, "count": count, "window_seconds": self.window}},
        )

    def close(self) -> None:
        """Write the pending summaries now and stop the timers (at shutdown)."""
        with self._lock:
            windows, self._windows = self._windows, {}
        for window in windows.values():
            if window.handle is not None:
                window.handle.cancel()
            if window.count:
                self._log.warning(
                    self._summary,
                    extra={
                        "fields": {
                            **window.fields,
                            "count": window.count,
                            "window_seconds": self.window,
                        }
                    },
                )
