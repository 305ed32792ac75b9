"""How far the host clock is off the API's: host time minus each answer's `Date` header.

The API refuses a request whose date is more than 15 minutes off its own clock
(`InvalidTimeStamp.Expired`); its `Date` header tells by how much, so the exporter can say
"the host clock is off by about N minutes" and export the offset
(`aliyun_vpn_clock_offset_seconds`, positive: the host is ahead) before that happens. The
header has a resolution of one second and is written before the answer travels, so the
offset is good to a second or two: enough for a 30-second alert.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import parsedate_to_datetime


class ClockOffset:
    """Measures the offset on every answer that carries a `Date` header."""

    def __init__(self, export: Callable[[float], None], wall_clock: Callable[[], float]) -> None:
        self._export = export
        self._wall_clock = wall_clock
        self._last_header = ""
        self._last_epoch = 0.0

    def observe(self, date_header: str | None) -> float | None:
        """The offset in seconds from `date_header`; None (and nothing exported) when the
        header is missing or unreadable. Parsing is skipped when the header repeats."""
        if not date_header:
            return None
        if date_header != self._last_header:
            try:
                parsed = parsedate_to_datetime(date_header)
            except (TypeError, ValueError):
                return None
            if parsed.tzinfo is None:  # RFC 9110 dates are GMT; `-0000` parses naive
                return None
            self._last_header, self._last_epoch = date_header, parsed.timestamp()
        offset = self._wall_clock() - self._last_epoch
        self._export(offset)
        return offset
