"""Label values that come from the cloud, bounded so a misbehaving API cannot explode the
series count.

`item`, `quota_name`, states and statuses are the API's strings. Each label keeps its known
values (the documented ones) and admits up to `MAX_NEW_VALUES` others, first come first
served, for the life of the process; any further value is exported as `other` and logged
once per label. An admitted value stays admitted, so a series never changes its labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from exporter.model.connection import IPSEC_STATUSES
from exporter.model.diagnosis import (
    CONSISTENCY_ITEM,
    PROBE_ITEMS,
    QUOTA_ITEMS,
    ROUTE_CONFLICT_ITEM,
)

log = logging.getLogger(__name__)

OTHER = "other"
MAX_NEW_VALUES = 16
"""Values a label admits beyond its known ones."""

KNOWN_ITEMS = QUOTA_ITEMS | PROBE_ITEMS | {CONSISTENCY_ITEM, ROUTE_CONFLICT_ITEM}
CONNECTION_STATES = ("active", "attached", "updating", "attaching", "detaching", "init")
"""FACTS: DescribeVpnConnections `State` (the list there ends with "…")."""


class BoundedValues:
    """One label's values: the known ones, up to `max_new` others, then `other`."""

    def __init__(self, label: str, known: Iterable[str], max_new: int = MAX_NEW_VALUES) -> None:
        self.label = label
        self._known = frozenset(known)
        self._admitted: set[str] = set()
        self._max_new = max_new
        self._capped = False

    def __call__(self, value: str) -> str:
        if value in self._known or value in self._admitted:
            return value
        if len(self._admitted) < self._max_new:
            self._admitted.add(value)
            return value
        if not self._capped:
            self._capped = True
            log.warning(
                "the API sends more undocumented values of a label than the exporter admits: "
                "further ones are exported as %r",
                OTHER,
                extra={"fields": {"label": self.label, "admitted": str(self._max_new)}},
            )
        return OTHER


class LabelBounds:
    """The bounded labels of one exporter (its fleet renders and self-metrics use them)."""

    def __init__(self, max_new: int = MAX_NEW_VALUES) -> None:
        self.item = BoundedValues("item", KNOWN_ITEMS, max_new)
        self.quota_name = BoundedValues("quota_name", (), max_new)
        self.gateway_status = BoundedValues("gateway_info status", (), max_new)
        self.connection_state = BoundedValues("connection_state state", CONNECTION_STATES, max_new)
        self.ipsec_status = BoundedValues("ipsec status", IPSEC_STATUSES, max_new)
        self.bgp_status = BoundedValues("connection_bgp_status status", (), max_new)
        self.health_check_status = BoundedValues(
            "connection_health_check_status status", (), max_new
        )
        self.tunnel_state = BoundedValues("tunnel_state state", CONNECTION_STATES, max_new)
