"""Shape drift: a description read despite a form the parser did not expect.

Nobody writing this exporter can call the real API, so what it knows of the
`DiagnoseResultDescription` shapes is two doc pages. Every deployment tells more: each form
the parser had to bend to read (a number written as a string, a key it does not know, a
doubly encoded description) is reported as a `Drift`, counted in
`aliyun_vpn_description_shape_drift_total{item,kind}` and logged once per new shape with
its key names, never the values. What could not be read at all is a parse error instead:
one event is never both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from exporter.model.diagnosis import CONSISTENCY_ITEM, PROBE_ITEMS, QUOTA_ITEMS


class DriftKind(StrEnum):
    """How a description departed from the documented form (the `kind` label)."""

    UNKNOWN_ITEM = "unknown_item"
    """A `DiagnoseName` the exporter does not know: only its level is exported."""
    UNKNOWN_LEVEL = "unknown_level"
    """A `DiagnoseResultLevel` other than normal, warning, error: no level is exported."""
    UNKNOWN_KEY = "unknown_key"
    """A description key the item's documentation does not name (ignored)."""
    NUMBER_AS_STRING = "number_as_string"
    """A number written as a decimal string (`"85"`), read as the number."""
    BOOLEAN_AS_STRING = "boolean_as_string"
    """A boolean written as text (`"false"`), read as the boolean."""
    DOUBLE_ENCODED = "double_encoded"
    """A JSON string holding the JSON description (decoded once more)."""
    ESCAPED_JSON = "escaped_json"
    """The API page's sample form: an object with backslash-escaped quotes, no outer quotes."""
    NOT_A_STRING = "not_a_string"
    """The description is a JSON object itself instead of a JSON string."""
    EMPTY = "empty"
    """An empty or null description of an item that may have none (read as nothing)."""


@dataclass(frozen=True, slots=True, order=True)
class Drift:
    """One departure: its kind and the key names involved (never values)."""

    kind: DriftKind
    keys: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}({','.join(self.keys)})" if self.keys else str(self.kind)


_PROBE_KEYS = frozenset({"targetIp", "srcIp", "rtt", "lossRate"})
DOCUMENTED_KEYS: dict[str, frozenset[str]] = {
    **dict.fromkeys(QUOTA_ITEMS, frozenset({"quotaName", "quantity", "used"})),
    **dict.fromkeys(PROBE_ITEMS, _PROBE_KEYS),
    CONSISTENCY_ITEM: frozenset({"vcoLackConf", "vcoRunningConf", "vcoDiffConf", "vcoConf"}),
}
"""The keys the API page names per item. `srcIp` counts for both probes: the page's sample
carries it. `RouteEntryConflict` has no documented keys; its known ones are the sample's
(probe-shaped) and those the parser counts (see `exporter.model.parser`)."""

ROUTE_CONFLICT_SAMPLE_KEYS = _PROBE_KEYS
"""The keys of the API page's `RouteEntryConflict` sample (a probe-shaped payload)."""
