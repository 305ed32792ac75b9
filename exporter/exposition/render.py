"""The per-gateway metric families of DESIGN's contract, rendered once per change.

Every gateway (and every target, for its interval gauges) owns one text fragment per
family. A poll re-renders only that gateway's fragments; within each family only the cell
of ~16-32 KB holding a changed fragment is re-joined and re-compressed for gzip (see
`exporter.exposition.cells`), at once, so a scrape concatenates cached bytes even right after
a burst
of polls. Gauge lines are identical in the Prometheus text format and OpenMetrics, so
one cache serves both.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass

from exporter.exposition.cells import FamilyText
from exporter.exposition.gzip_segments import Segment
from exporter.exposition.label_bounds import LabelBounds
from exporter.exposition.records import GatewayRecord, TargetRecord
from exporter.model.connection import IPSEC_STATUSES, VpnConnection
from exporter.model.diagnosis import (
    ConsistencyReading,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
    RouteConflictReading,
)
from exporter.model.gateway import tag_label_name

SCHEDULE_NOTE = "Refreshed on the exporter's own poll schedule, not per scrape."


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its name, type and HELP text."""

    name: str
    type: str
    help: str

    @property
    def header(self) -> bytes:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n".encode()


def _family(name: str, help_text: str) -> Family:
    return Family(f"aliyun_vpn_{name}", "gauge", f"{help_text} {SCHEDULE_NOTE}")


ITEM_STATUS = _family(
    "diagnose_item_status",
    "1 for the level (normal, warning, error) of each diagnosis item "
    "(GetVpnGatewayDiagnoseResult DiagnoseResultLevel).",
)
QUOTA_USED = _family("quota_used", "Quota in use (diagnosis item description 'used').")
QUOTA_LIMIT = _family("quota_limit", "Quota limit (diagnosis item description 'quantity').")
PROBE_RTT = _family(
    "probe_rtt_seconds", "Round-trip time of a diagnosis connectivity probe; absent without reply."
)
PROBE_LOSS = _family(
    "probe_packet_loss_ratio", "Packet loss of a diagnosis connectivity probe, 0 to 1."
)
PROBE_REACHABLE = _family(
    "probe_reachable", "1 if the diagnosis connectivity probe got replies, 0 if none."
)
CONFIG_CONSISTENT = _family(
    "config_consistent", "1 if the IPsec configuration matches its peer (VcoConfigConsistency)."
)
CONFIG_PEER_AVAILABLE = _family(
    "config_peer_available",
    "0 if the diagnosis could not obtain the peer's IPsec configuration (VcoConfigConsistency "
    "vcoLackConf true): consistency is then unknown and config_consistent absent.",
)
CONFIG_DIFF = _family(
    "config_diff_entries", "IPsec settings that differ from the peer (VcoConfigConsistency)."
)
ROUTE_CONFLICTS = _family(
    "route_conflicts", "Conflicting routes listed by the RouteEntryConflict diagnosis item."
)
BEGIN_TIME = _family(
    "diagnose_begin_timestamp_seconds", "Unix time the shown diagnosis began (BeginTime)."
)
FINISH_TIME = _family(
    "diagnose_finish_timestamp_seconds", "Unix time the shown diagnosis finished (FinishTime)."
)
ITEMS_FINISHED = _family(
    "diagnose_items_finished", "Items the latest diagnosis has finished (FinishedCount)."
)
ITEMS_EXPECTED = _family(
    "diagnose_items_expected", "Items the latest diagnosis will check (TotalCount)."
)
AVAILABLE = _family(
    "diagnose_available",
    "0 if the gateway has no diagnosis yet (InvalidVpnGatewayId.NotFound), else 1.",
)
RUNNING = _family("diagnose_running", "1 while the gateway's latest diagnosis has not finished.")
GATEWAY_FOUND = _family(
    "gateway_found",
    "0 after the API said the gateway does not exist (InvalidVpnGatewayInstanceId.NotFound: "
    "a wrong ID, region or account), else 1; its other series keep their last values.",
)
GATEWAY_INFO = _family(
    "gateway_info",
    "Descriptive labels of the gateway, and its allow-listed tags as tag_<key> "
    "(DescribeVpnGateways).",
)
CONNECTION_INFO = _family(
    "connection_info", "Descriptive labels of an IPsec connection (DescribeVpnConnections)."
)
CONNECTION_STATE = _family(
    "connection_state", "1 for the IPsec connection's State (DescribeVpnConnections)."
)
CONNECTION_IPSEC_STATUS = _family(
    "connection_ipsec_status",
    "IPsec negotiation status of the connection as a state set: 1 for the current Status, "
    "0 for the other documented values (DescribeVpnConnections).",
)
CONNECTION_BGP_STATUS = _family(
    "connection_bgp_status",
    "1 for the connection's BGP status, VpnBgpConfig.Status (DescribeVpnConnections).",
)
CONNECTION_HEALTH_CHECK_STATUS = _family(
    "connection_health_check_status",
    "1 for the connection's health-check status, VcoHealthCheck.Status (DescribeVpnConnections).",
)
TUNNEL_INFO = _family(
    "tunnel_info", "Descriptive labels of a tunnel of a dual-tunnel IPsec connection."
)
TUNNEL_STATE = _family("tunnel_state", "1 for the State of a tunnel of an IPsec connection.")
TUNNEL_IPSEC_STATUS = _family(
    "tunnel_ipsec_status",
    "IPsec negotiation status of a tunnel as a state set: 1 for the current Status, 0 for "
    "the other documented values (DescribeVpnConnections).",
)
POLL_SUCCESS = _family(
    "poll_success", "1 if the last poll of the gateway got a documented answer from the API."
)
POLL_LAST_SUCCESS = _family(
    "poll_last_success_timestamp_seconds", "Unix time of the last successful poll of the gateway."
)
POLL_DURATION = _family(
    "poll_duration_seconds", "Duration of the last poll of the gateway, retries included."
)
POLL_INTERVAL = _family("poll_interval_seconds", "Configured poll interval of the target.")
POLL_EFFECTIVE_INTERVAL = _family(
    "poll_effective_interval_seconds",
    "Pace achieved: the longest time between two successive poll launches (first attempt "
    "granted by the rate budget) of one gateway of the target over its last completed "
    "cycle; the planned interval until a cycle has completed.",
)
POLL_LAST_LAUNCH = _family(
    "poll_last_launch_timestamp_seconds",
    "Unix time the target's scheduler last launched a poll (the rate budget granted its "
    "first attempt).",
)
TARGET_INFO = _family("target_info", "The target's credentials profile and region; always 1.")
DIAGNOSE_SCHEDULE_INTERVAL = _family(
    "diagnose_schedule_interval_seconds",
    "Interval of the target's scheduled diagnoses (diagnose.interval, stretched by the API "
    "budget); absent when scheduled diagnoses are off.",
)
DIAGNOSE_MAX_AGE = _family(
    "diagnose_max_age_seconds",
    "Age after which a gateway's latest finished diagnosis is stale: 2 x the schedule "
    "interval + diagnose.timeout, or diagnose.manual_max_age without scheduled diagnoses.",
)
TARGET_GATEWAYS = _family(
    "target_gateways", "Gateways the target polls (listed and discovered; this shard's share)."
)
LISTING_SUCCESS = _family(
    "listing_success",
    "1 if the target's last DescribeVpnGateways or DescribeVpnConnections refresh succeeded.",
)
LISTING_LAST_SUCCESS = _family(
    "listing_last_success_timestamp_seconds",
    "Unix time of the target's last successful refresh by that action.",
)

FAMILIES: tuple[Family, ...] = (
    ITEM_STATUS,
    QUOTA_USED,
    QUOTA_LIMIT,
    PROBE_RTT,
    PROBE_LOSS,
    PROBE_REACHABLE,
    CONFIG_CONSISTENT,
    CONFIG_PEER_AVAILABLE,
    CONFIG_DIFF,
    ROUTE_CONFLICTS,
    BEGIN_TIME,
    FINISH_TIME,
    ITEMS_FINISHED,
    ITEMS_EXPECTED,
    AVAILABLE,
    RUNNING,
    GATEWAY_FOUND,
    GATEWAY_INFO,
    CONNECTION_INFO,
    CONNECTION_STATE,
    CONNECTION_IPSEC_STATUS,
    CONNECTION_BGP_STATUS,
    CONNECTION_HEALTH_CHECK_STATUS,
    TUNNEL_INFO,
    TUNNEL_STATE,
    TUNNEL_IPSEC_STATUS,
    POLL_SUCCESS,
    POLL_LAST_SUCCESS,
    POLL_DURATION,
    POLL_INTERVAL,
    POLL_EFFECTIVE_INTERVAL,
    POLL_LAST_LAUNCH,
    TARGET_INFO,
    DIAGNOSE_SCHEDULE_INTERVAL,
    DIAGNOSE_MAX_AGE,
    TARGET_GATEWAYS,
    LISTING_SUCCESS,
    LISTING_LAST_SUCCESS,
)
_INDEX = {family.name: index for index, family in enumerate(FAMILIES)}
Fragments = tuple[bytes, ...]
EMPTY_FRAGMENTS: Fragments = (b"",) * len(FAMILIES)


def escape_label_value(value: str) -> str:
    """Escape a label value for the text formats (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float) -> str:
    """A sample value as Go's Prometheus client would print it."""
    value = float(value)  # an int (a count) has no is_integer() on Python 3.11
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(**labels: str) -> str:
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels.items())


class _Lines:
    """Collects sample lines per family for one owner."""

    def __init__(self, base_labels: str) -> None:
        self.base = base_labels
        self.lines: list[list[str]] = [[] for _ in FAMILIES]

    def add(self, family: Family, value: float, extra: str = "") -> None:
        labels = f"{self.base},{extra}" if extra else self.base
        self.lines[_INDEX[family.name]].append(f"{family.name}{{{labels}}} {format_value(value)}\n")

    def fragments(self) -> Fragments:
        return tuple("".join(lines).encode() for lines in self.lines)


def _shown(diagnosis_finished: Diagnosis | None, latest: Diagnosis) -> Diagnosis:
    """Items of the last finished diagnosis; the running one's only when none finished."""
    return diagnosis_finished if diagnosis_finished is not None else latest


def render_gateway(record: GatewayRecord, bounds: LabelBounds | None = None) -> Fragments:
    """Render one gateway's samples; `record` must already be stripped of stale data.

    Label values from the API go through `bounds` (the fleet's; None: a fresh set)."""
    bounds = bounds or LabelBounds()
    key = record.key
    out = _Lines(
        _labels(target=key.target, region_id=key.region_id, vpn_gateway_id=key.vpn_gateway_id)
    )
    for connection_id, connection in record.connections.items():
        shown = _shown(connection.finished, connection.latest)
        conn_labels = _labels(vpn_connection_id=connection_id)
        _render_connection(out, conn_labels, shown, connection.latest, bounds)
        if connection_id == record.latest_connection:
            _render_gateway_items(out, shown, bounds)
    if record.available is not None:
        out.add(AVAILABLE, 1.0 if record.available else 0.0)
        out.add(RUNNING, 1.0 if record.running else 0.0)
    out.add(GATEWAY_FOUND, 1.0 if record.found else 0.0)
    if record.info is not None:
        info = record.info
        labels = _labels(
            name=info.name,
            vpc_id=info.vpc_id,
            spec=info.spec,
            status=bounds.gateway_status(info.status),
        )
        tags = sorted((tag_label_name(key), value) for key, value in info.tags.items())
        out.add(GATEWAY_INFO, 1.0, ",".join([labels, *(_labels(**{k: v}) for k, v in tags)]))
    if record.vpn_connections is not None:
        seen: set[str] = set()
        for vpn_connection in record.vpn_connections:
            if vpn_connection.vpn_connection_id not in seen:
                seen.add(vpn_connection.vpn_connection_id)
                _render_vpn_connection(out, vpn_connection, bounds)
    if record.last_poll is not None:
        out.add(POLL_SUCCESS, 1.0 if record.last_poll.success else 0.0)
        out.add(POLL_DURATION, record.last_poll.duration)
    if record.last_success_at is not None:
        out.add(POLL_LAST_SUCCESS, record.last_success_at)
    return out.fragments()


def _render_connection(
    out: _Lines, conn: str, shown: Diagnosis, latest: Diagnosis, bounds: LabelBounds
) -> None:
    rendered: set[str] = set()
    for item in shown.items:
        name = bounds.item(item.name)
        if name in rendered:  # a second item beyond the bound: `other` is taken
            continue
        rendered.add(name)
        item_labels = f"{conn},{_labels(item=name)}"
        if item.level is not None:
            for level in Level:
                out.add(
                    ITEM_STATUS,
                    1.0 if item.level is level else 0.0,
                    f'{item_labels},level="{level}"',
                )
        reading = item.reading
        if isinstance(reading, ProbeReading):
            probe = (
                f"{item_labels},{_labels(source_ip=reading.source_ip, target_ip=reading.target_ip)}"
            )
            if reading.rtt_seconds is not None:
                out.add(PROBE_RTT, reading.rtt_seconds, probe)
            if reading.loss_ratio is not None:
                out.add(PROBE_LOSS, reading.loss_ratio, probe)
            if reading.reachable is not None:
                out.add(PROBE_REACHABLE, 1.0 if reading.reachable else 0.0, probe)
        elif isinstance(reading, ConsistencyReading):
            if reading.consistent is not None:
                out.add(CONFIG_CONSISTENT, 1.0 if reading.consistent else 0.0, conn)
            if reading.peer_available is not None:
                out.add(CONFIG_PEER_AVAILABLE, 1.0 if reading.peer_available else 0.0, conn)
            if reading.diff_entries is not None:
                out.add(CONFIG_DIFF, float(reading.diff_entries), conn)
    if shown.begin_time is not None:
        out.add(BEGIN_TIME, shown.begin_time, conn)
    if shown.finish_time is not None and not shown.running:
        out.add(FINISH_TIME, shown.finish_time, conn)
    out.add(ITEMS_FINISHED, float(latest.finished_count), conn)
    out.add(ITEMS_EXPECTED, float(latest.total_count), conn)


def _render_vpn_connection(out: _Lines, connection: VpnConnection, bounds: LabelBounds) -> None:
    """The status series of one connection (DescribeVpnConnections)."""
    conn = _labels(vpn_connection_id=connection.vpn_connection_id)
    out.add(
        CONNECTION_INFO,
        1.0,
        f"{conn},"
        + _labels(
            name=connection.name,
            attach_type=connection.attach_type or "",
            transit_router_id=connection.transit_router_id or "",
        ),
    )
    if connection.state is not None:
        state = bounds.connection_state(connection.state)
        out.add(CONNECTION_STATE, 1.0, f"{conn},{_labels(state=state)}")
    if connection.status is not None:
        status = bounds.ipsec_status(connection.status)
        _state_set(out, CONNECTION_IPSEC_STATUS, conn, status)
    if connection.bgp_status is not None:
        bgp = bounds.bgp_status(connection.bgp_status)
        out.add(CONNECTION_BGP_STATUS, 1.0, f"{conn},{_labels(status=bgp)}")
    if connection.health_check_status is not None:
        health = bounds.health_check_status(connection.health_check_status)
        out.add(CONNECTION_HEALTH_CHECK_STATUS, 1.0, f"{conn},{_labels(status=health)}")
    for tunnel in connection.tunnels:
        labels = f"{conn},{_labels(tunnel_id=tunnel.tunnel_id)}"
        out.add(TUNNEL_INFO, 1.0, f"{labels},{_labels(role=tunnel.role or '')}")
        if tunnel.state is not None:
            state = bounds.tunnel_state(tunnel.state)
            out.add(TUNNEL_STATE, 1.0, f"{labels},{_labels(state=state)}")
        if tunnel.status is not None:
            _state_set(out, TUNNEL_IPSEC_STATUS, labels, bounds.ipsec_status(tunnel.status))


def _state_set(out: _Lines, family: Family, labels: str, status: str) -> None:
    """Every documented IPsec status, 1 for `status`; an undocumented one is added at 1."""
    for value in IPSEC_STATUSES:
        out.add(family, 1.0 if value == status else 0.0, f'{labels},status="{value}"')
    if status not in IPSEC_STATUSES:
        out.add(family, 1.0, f"{labels},{_labels(status=status)}")


def _render_gateway_items(out: _Lines, shown: Diagnosis, bounds: LabelBounds) -> None:
    """Gateway-scoped readings (quotas, route conflicts) of the latest diagnosis."""
    rendered: set[str] = set()
    for item in shown.items:
        reading = item.reading
        if isinstance(reading, QuotaReading):
            quota = _labels(
                item=bounds.item(item.name), quota_name=bounds.quota_name(reading.quota_name)
            )
            if quota in rendered:
                continue
            rendered.add(quota)
            if reading.used is not None:
                out.add(QUOTA_USED, reading.used, quota)
            if reading.limit is not None:
                out.add(QUOTA_LIMIT, reading.limit, quota)
        elif isinstance(reading, RouteConflictReading) and reading.conflicts is not None:
            out.add(ROUTE_CONFLICTS, float(reading.conflicts))


def render_target(target: TargetRecord) -> Fragments:
    """The target-level gauges: its settings and its achieved pace."""
    out = _Lines(_labels(target=target.name))
    out.add(POLL_INTERVAL, target.interval)
    out.add(POLL_EFFECTIVE_INTERVAL, target.effective_interval)
    if target.last_launch_at is not None:
        out.add(POLL_LAST_LAUNCH, target.last_launch_at)
    out.add(TARGET_INFO, 1.0, _labels(profile=target.profile, region_id=target.region_id))
    if target.diagnose_interval is not None:
        out.add(DIAGNOSE_SCHEDULE_INTERVAL, target.diagnose_interval)
    if target.diagnose_max_age is not None:
        out.add(DIAGNOSE_MAX_AGE, target.diagnose_max_age)
    return out.fragments()


def render_inventory(
    target: str, gateways: int, listings: Mapping[str, tuple[bool, float | None]]
) -> Fragments:
    """The target's gateway count and how its listings went: `listings` maps an action
    to (last refresh succeeded, wall time of the last success)."""
    out = _Lines(_labels(target=target))
    out.add(TARGET_GATEWAYS, float(gateways))
    for action, (success, last_success) in sorted(listings.items()):
        labels = _labels(action=action)
        out.add(LISTING_SUCCESS, 1.0 if success else 0.0, labels)
        if last_success is not None:
            out.add(LISTING_LAST_SUCCESS, last_success, labels)
    return out.fragments()


OWNERS_PER_CELL = {
    ITEM_STATUS.name: 32,
    QUOTA_USED.name: 32,
    PROBE_RTT.name: 32,
    PROBE_LOSS.name: 32,
    QUOTA_LIMIT.name: 128,
    PROBE_REACHABLE.name: 128,
    CONNECTION_IPSEC_STATUS.name: 128,
    TUNNEL_IPSEC_STATUS.name: 64,
    BEGIN_TIME.name: 128,
    FINISH_TIME.name: 128,
    POLL_DURATION.name: 128,
    POLL_LAST_SUCCESS.name: 128,
}
"""Owners per cell (see `exporter.exposition.cells`). Families that every poll changes
(timestamps, durations, probe and quota readings) get cells of some 16-20 KB: an update
re-compresses one of them. The others change rarely and get cells of 64-190 KB (an owner
has ~4 KB of item status lines, ~0.5-1.7 KB of probe, quota or status-set lines, ~150-400
bytes in the other families), which compress once cooled to within some 15 % of the
whole text at level 9, where 16-32 KB cells stayed ~40 % above it."""
DEFAULT_OWNERS_PER_CELL = 512


GENERATION_CHANGES = 256
"""Owners changed (put or removed) per generation. A cell not changed during the current
generation nor the one before cools (`FamilyText.cool`): one that every poll changes stays
hot, one that changes only now and then does not keep its text."""
COOL_PER_CHANGE = 4
"""Most cells cooled per owner changed: cooling is spread over the updates, never a pass
over the whole exposition in one go."""
FLUSH_AFTER = 32
"""Owners changed before a dirty cell is compressed (`FamilyText.flush`): the polls that
follow mostly change the same cells, which are then compressed once, not once each. A
scrape compresses the cells still dirty."""


class Exposition:
    """Cached exposition of every owner's fragments, family by family.

    Owners get slots in the order they first appear (a removed owner's slot is reused);
    the text of each family is kept in cells of consecutive slots (`exporter.exposition.cells`),
    compressed: `segments` hands them out as they are, `chunks` inflates them.
    """

    def __init__(self) -> None:
        self._families = [
            FamilyText(family.header, OWNERS_PER_CELL.get(family.name, DEFAULT_OWNERS_PER_CELL))
            for family in FAMILIES
        ]
        self._slots: dict[Hashable, int] = {}
        self._free: list[int] = []
        self._hot: OrderedDict[tuple[int, int], int] = OrderedDict()
        """(family index, cell) of hot cells → generation of their last change, oldest first."""
        self._dirty: OrderedDict[tuple[int, int], int] = OrderedDict()
        """(family index, cell) of dirty cells → the change that made them dirty, oldest first."""
        self._changed = 0
        """Owners changed so far (a generation is `GENERATION_CHANGES` of them)."""

    def put(self, owner: Hashable, fragments: Fragments) -> None:
        """Replace `owner`'s samples; only the cells whose text changed are rebuilt."""
        slot = self._slots.get(owner)
        if slot is None:
            if not any(fragments):
                return
            slot = self._free.pop() if self._free else len(self._slots)
            self._slots[owner] = slot
        self._set(slot, fragments)

    def remove(self, owner: Hashable) -> None:
        """Drop every sample of `owner`."""
        slot = self._slots.pop(owner, None)
        if slot is None:
            return
        self._set(slot, EMPTY_FRAGMENTS)
        self._free.append(slot)

    def _set(self, slot: int, fragments: Fragments) -> None:
        hot, dirty = self._hot, self._dirty
        self._changed += 1
        generation = self._changed // GENERATION_CHANGES
        for index, (family, fragment) in enumerate(zip(self._families, fragments, strict=True)):
            if family.set(slot, fragment):
                changed = (index, slot // family.per_cell)
                hot[changed] = generation
                hot.move_to_end(changed)
                dirty.setdefault(changed, self._changed)
        while dirty:
            (index, cell), since = next(iter(dirty.items()))
            if since > self._changed - FLUSH_AFTER:
                break
            del dirty[(index, cell)]
            self._families[index].flush(cell)
        self._cool(COOL_PER_CHANGE, generation - 1)

    def _cool(self, budget: int, before: int) -> None:
        """Cool up to `budget` hot cells last changed before generation `before`."""
        hot = self._hot
        while hot and budget:
            (index, cell), generation = next(iter(hot.items()))
            if generation >= before:
                return
            del hot[(index, cell)]
            self._families[index].cool(cell)
            budget -= 1

    def cool_all(self) -> None:
        """Cool every hot cell now (as if nothing had changed for two generations)."""
        self._cool(len(self._hot), self._changed // GENERATION_CHANGES + 1)

    @property
    def size(self) -> int:
        """Length of the whole text in bytes."""
        return sum(f.size + len(f.header) for f in self._families if f.filled)

    @property
    def hot_bytes(self) -> int:
        """Plain text held by hot cells (see `exporter.exposition.cells`)."""
        return sum(family.hot_bytes() for family in self._families)

    def chunks(self) -> Iterator[bytes]:
        """The exposition text, family by family, inflated from the cached segments."""
        for family in self._families:
            yield from family.chunks()

    def segments(self) -> Iterator[Segment]:
        """The same text as one gzip segment per family, joined at most once per change."""
        for family in self._families:
            segment = family.segment()
            if segment.size:
                yield segment
