"""What the status page says about one gateway: its summary and its row.

`summarize` is what the page keeps for every gateway between requests (severity, sort
key, search text, connection counts: a few hundred bytes); `row_html` renders the full
row for the gateways on the page only. Both are pure functions of an immutable
`GatewayRecord` (and, for the row, the time of the request), so they can run in a worker
thread.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from html import escape
from urllib.parse import urlencode

from exporter.exposition.records import GatewayKey, GatewayRecord
from exporter.model.connection import VpnConnection
from exporter.model.diagnosis import (
    ConsistencyReading,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
)

ITEM_TITLES = {
    "VpnRouteQuota": "route quota",
    "VpnIPsecQuota": "IPsec quota",
    "VpnPbrRouteQuota": "PBR quota",
    "RouteEntryConflict": "route conflicts",
    "VcoConfigConsistency": "config",
    "VcoUserInternetIpConnectivity": "public probe",
    "VcoPrivateConnectivity": "private probe",
}
"""Short chip titles; the full `DiagnoseName` is each chip's tooltip."""
ITEM_ORDER = tuple(ITEM_TITLES)
ESTABLISHED = "ipsec_sa_established"
IPSEC_PHRASES = {
    "ike_sa_not_established": "IKE SA not established",
    "ike_sa_established": "IPsec SA not established (IKE up)",
    "ipsec_sa_not_established": "IPsec SA not established",
}
GOOD_STATUS = "success"
"""`VpnBgpConfig.Status` and `VcoHealthCheck.Status` when all is well."""
ACTIVE = "active"
GATEWAY_DASHBOARD = "d/aliyun-vpn-gateway/aliyun-vpn-gateway-detail"


class Severity(IntEnum):
    """A gateway's overall state; lower sorts first (problems first)."""

    ERROR = 0
    WARNING = 1
    NO_DIAGNOSIS = 2
    PENDING = 3
    OK = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")

    @property
    def css(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    """Connection and tunnel health of one gateway, for the page's summary."""

    connections: int = 0
    ipsec_down: int = 0
    tunnels: int = 0
    tunnels_down: int = 0
    bgp_down: int = 0
    health_check_failed: int = 0


@dataclass(frozen=True, slots=True)
class RowSummary:
    """What sorts, filters and counts a gateway: all the page keeps between requests."""

    key: GatewayKey
    severity: Severity
    order: tuple[int, str, str, str]
    """Severity, target, region, ID: the page's order, kept so that sorting the fleet
    allocates nothing per gateway."""
    search_text: str
    """Lower-case target, region, ID and name: what `?q=` matches."""
    poll_failed: bool
    counts: ConnectionCounts


def summarize(record: GatewayRecord) -> RowSummary:
    """The gateway's severity and counts (pure: no clock, no I/O, no HTML)."""
    key = record.key
    levels = _worst_levels(_shown_diagnoses(record))
    poll_failed = record.last_poll is not None and not record.last_poll.success
    counts = _connection_counts(record.vpn_connections)
    name = record.info.name if record.info is not None else ""
    severity = _severity(record, levels, poll_failed, counts)
    return RowSummary(
        key=key,
        severity=severity,
        order=(severity, key.target, key.region_id, key.vpn_gateway_id),
        search_text=f"{key.target} {key.region_id} {key.vpn_gateway_id} {name}".lower(),
        poll_failed=poll_failed,
        counts=counts,
    )


@dataclass(frozen=True, slots=True)
class RowContext:
    """What a row's HTML depends on besides its record: the request's time, Grafana's
    URL, and each target's diagnosis age limit (`aliyun_vpn_diagnose_max_age_seconds`)."""

    now: float
    grafana_url: str | None = None
    max_ages: Mapping[str, float | None] = field(default_factory=dict)


def row_html(record: GatewayRecord, severity: Severity, context: RowContext) -> str:
    """The gateway's `<tr>`, ages as of `context.now`."""
    now = context.now
    shown = _shown_diagnoses(record)
    levels = _worst_levels(shown)
    latest = shown[0] if shown else None
    finished_at = latest.finish_time if latest is not None and not latest.running else None
    max_age = context.max_ages.get(record.key.target)
    stale = finished_at is not None and max_age is not None and now - finished_at > max_age
    connections_html, connection_problems = _connections(record.vpn_connections)
    problems = _problems(record, levels, connection_problems)
    if stale:
        problems.append(f"diagnosis older than {_duration(max_age or 0)}: its levels are old news")
    name = record.info.name if record.info is not None else ""
    poll = record.last_poll
    poll_failed = poll is not None and not poll.success
    outcome = "pending" if poll is None else ("ok" if poll.success else "failed")
    polled_at = poll.finished_at if poll is not None else None
    last_ok = ""
    if poll_failed:  # the data shown is as of the last success
        last_ok = f"<br>last ok {_age(now, record.last_success_at)}"
    gateway = _gateway_cell(record, name, context.grafana_url, problems, severity)
    return (
        f'<tr class="{severity.css}" data-gateway="{escape(record.key.vpn_gateway_id)}" '
        f'data-state="{severity.css}">'
        f'<td class="gateway">{gateway}</td>'
        f'<td class="connections">{connections_html}</td>'
        f'<td class="items">{_items_cell(levels, record.available)}</td>'
        f'<td class="values">{_values_cell(shown)}</td>'
        + _diagnosed_cell(now, finished_at, bool(record.running), stale)
        + f'<td class="when poll-{outcome}" title="{format_time(polled_at)}">{outcome}<br>'
        f'<span class="sub">{_age(now, polled_at) if polled_at else ""}{last_ok}</span></td>'
        + _error_cell(poll.error_code if poll else None, poll.error if poll else None, poll_failed)
        + "</tr>"
    )


def _problems(
    record: GatewayRecord, levels: dict[str, Level], connection_problems: list[str]
) -> list[str]:
    """What is wrong with the gateway, in words, worst kinds first."""
    problems: list[str] = []
    if record.last_poll is not None and not record.last_poll.success:
        problems.append("last poll failed")
    if not record.found:
        problems.append("gateway not found (InvalidVpnGatewayInstanceId.NotFound)")
    if record.info is not None and record.info.status.lower() != ACTIVE:
        problems.append(f"gateway {record.info.status}")
    problems += connection_problems
    problems += [
        f"{ITEM_TITLES.get(item, item)} {level}"
        for item, level in levels.items()
        if level is not Level.NORMAL
    ]
    return problems


def _diagnosed_cell(now: float, finished_at: float | None, running: bool, stale: bool) -> str:
    if running and finished_at is None:
        text = '<span class="sub">running</span>'
    else:
        text = _age(now, finished_at) + (" (running)" if running else "")
    if stale:
        text = f'<span class="stale">{text}<br>stale</span>'
    return f'<td class="when" title="{format_time(finished_at)}">{text}</td>'


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def format_time(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, now - then)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _shown_diagnoses(record: GatewayRecord) -> list[Diagnosis]:
    """The diagnosis whose items are exported, per connection; the gateway's latest first."""
    shown: list[Diagnosis] = []
    for connection_id, connection in record.connections.items():
        diagnosis = connection.finished or connection.latest
        if connection_id == record.latest_connection:
            shown.insert(0, diagnosis)
        else:
            shown.append(diagnosis)
    return shown


_RANK = {Level.NORMAL: 0, Level.WARNING: 1, Level.ERROR: 2}


def _worst_levels(shown: list[Diagnosis]) -> dict[str, Level]:
    """Each item's worst level across the gateway's connections, in the API's order."""
    worst: dict[str, Level] = {}
    for diagnosis in shown:
        for item in diagnosis.items:
            if item.level is None:
                continue
            current = worst.get(item.name)
            if current is None or _RANK[item.level] > _RANK[current]:
                worst[item.name] = item.level
    ordered = {name: worst[name] for name in ITEM_ORDER if name in worst}
    ordered.update(sorted((n, lv) for n, lv in worst.items() if n not in ordered))
    return ordered


def _severity(
    record: GatewayRecord,
    levels: dict[str, Level],
    poll_failed: bool,
    counts: ConnectionCounts,
) -> Severity:
    broken = (
        poll_failed
        or not record.found
        or counts.ipsec_down
        or counts.bgp_down
        or counts.health_check_failed
    )
    inactive = record.info is not None and record.info.status.lower() != ACTIVE
    if broken or inactive or Level.ERROR in levels.values():
        return Severity.ERROR
    if counts.tunnels_down or Level.WARNING in levels.values():
        return Severity.WARNING
    if record.last_poll is None:
        return Severity.PENDING
    if record.available is False:
        return Severity.NO_DIAGNOSIS
    return Severity.OK


def _gateway_cell(
    record: GatewayRecord,
    name: str,
    grafana_url: str | None,
    problems: list[str],
    severity: Severity,
) -> str:
    key = record.key
    gateway_id = escape(key.vpn_gateway_id)
    if grafana_url:
        query = urlencode(
            {"var-region_id": key.region_id, "var-vpn_gateway_id": key.vpn_gateway_id}
        )
        href = escape(f"{grafana_url.rstrip('/')}/{GATEWAY_DASHBOARD}?{query}")
        gateway_id = f'<a class="gw" href="{href}" title="Grafana: gateway detail">{gateway_id}</a>'
    sub = " · ".join(escape(part) for part in (name, key.region_id, key.target) if part)
    listed = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
    problems_html = f'<ul class="problems">{listed}</ul>' if problems else ""
    badge = f'<span class="badge {severity.css}">{severity.label}</span>'
    return f'<div class="id">{gateway_id} {badge}</div><div class="sub">{sub}</div>{problems_html}'


def _chip(text: str, good: bool | None, title: str, **data: str) -> str:
    css = "ok" if good else ("bad" if good is False else "unknown")
    attributes = "".join(
        f' data-{name.replace("_", "-")}="{escape(v)}"' for name, v in data.items()
    )
    return f'<span class="chip {css}" title="{escape(title)}"{attributes}>{escape(text)}</span>'


def _connection_counts(connections: tuple[VpnConnection, ...] | None) -> ConnectionCounts:
    if not connections:
        return ConnectionCounts()
    ipsec_down = tunnels = tunnels_down = bgp_down = health_failed = 0
    for connection in connections:
        up = sum(tunnel.status == ESTABLISHED for tunnel in connection.tunnels)
        tunnels += len(connection.tunnels)
        tunnels_down += len(connection.tunnels) - up
        ipsec_down += _ipsec_ok(connection) is False
        bgp_down += connection.bgp_status not in (None, GOOD_STATUS)
        health_failed += connection.health_check_status not in (None, GOOD_STATUS)
    return _shared_counts(
        len(connections), ipsec_down, tunnels, tunnels_down, bgp_down, health_failed
    )


_shared_counts = functools.lru_cache(maxsize=256)(ConnectionCounts)
"""Most gateways have the same counts (one connection, two tunnels, all up): one object
each, not one per gateway (fewer objects for the garbage collector to walk)."""


def _ipsec_ok(connection: VpnConnection) -> bool | None:
    """Whether traffic can pass: the connection's IPsec SA is up, and for a dual-tunnel
    connection at least one tunnel's is (as the AliyunVpnIpsecSaNotEstablished alert)."""
    if connection.tunnels and not any(t.status == ESTABLISHED for t in connection.tunnels):
        return False
    return None if connection.status is None else connection.status == ESTABLISHED


def _connections(connections: tuple[VpnConnection, ...] | None) -> tuple[str, list[str]]:
    """The connections cell and the problems found."""
    if connections is None:
        return '<span class="none">not listed yet</span>', []
    if not connections:
        return '<span class="none">no connections</span>', []
    parts: list[str] = []
    problems: list[str] = []
    for connection in connections:
        cid = connection.vpn_connection_id
        status = connection.status
        ipsec_ok = _ipsec_ok(connection)
        if ipsec_ok is False:
            problems.append(f"{cid}: {IPSEC_PHRASES.get(status or '', 'no tunnel up')}")
        chips = [
            _chip("IPsec", ipsec_ok, f"IPsec status: {status or 'unknown'}", ipsec=status or "")
        ]
        for index, tunnel in enumerate(connection.tunnels, start=1):
            good = tunnel.status == ESTABLISHED
            if not good and ipsec_ok is not False:
                phrase = IPSEC_PHRASES.get(tunnel.status or "", tunnel.status or "down")
                problems.append(f"{cid}: tunnel {tunnel.tunnel_id} {phrase}")
            chips.append(
                _chip(
                    f"T{index}",
                    None if tunnel.status is None else good,
                    f"tunnel {tunnel.tunnel_id} ({tunnel.role or 'role unknown'}): "
                    f"{tunnel.status or 'status unknown'}, state {tunnel.state or 'unknown'}",
                    tunnel=tunnel.tunnel_id,
                    status=tunnel.status or "",
                )
            )
        for text, value, what, data in (
            ("BGP", connection.bgp_status, "BGP", "bgp"),
            ("HC", connection.health_check_status, "health check", "health_check"),
        ):
            if value is None:
                continue
            if value != GOOD_STATUS:
                problems.append(f"{cid}: {what} {value}")
            chips.append(_chip(text, value == GOOD_STATUS, f"{what}: {value}", **{data: value}))
        title = f"{connection.name}, state {connection.state or 'unknown'}"
        parts.append(
            f'<div class="conn" data-connection="{escape(cid)}">'
            f'<span class="cid" title="{escape(title)}">{escape(cid)}</span> '
            + "".join(chips)
            + "</div>"
        )
    return "".join(parts), problems


def _items_cell(levels: dict[str, Level], available: bool | None) -> str:
    if not levels:
        text = "no diagnosis yet" if available is False else "no items yet"
        return f'<span class="none">{text}</span>'
    return "".join(
        f'<span class="chip level-{level}" data-item="{escape(item)}" data-level="{level}" '
        f'title="{escape(item)}: {level}">{escape(ITEM_TITLES.get(item, item))}</span>'
        for item, level in levels.items()
    )


def _percent(used: float, limit: float) -> str:
    return f"{used / limit:.0%}" if limit > 0 else "n/a"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _values_cell(shown: list[Diagnosis]) -> str:
    """Quotas (used/limit and %) of the latest diagnosis, and each probe's RTT and loss."""
    lines = []
    if shown:
        for item in shown[0].items:
            reading = item.reading
            if isinstance(reading, QuotaReading) and reading.used is not None:
                limit = reading.limit
                amount = _number(reading.used) + (f"/{_number(limit)}" if limit else "")
                percent = f" ({_percent(reading.used, limit)})" if limit else ""
                lines.append(
                    f'<div data-quota="{escape(item.name)}">'
                    f"{escape(ITEM_TITLES.get(item.name, item.name))} {amount}{percent}</div>"
                )
    for diagnosis in shown:
        for item in diagnosis.items:
            reading = item.reading
            if isinstance(reading, ProbeReading):
                lines.append(_probe_line(item.name, reading))
            elif isinstance(reading, ConsistencyReading) and reading.diff_entries:
                lines.append(f"<div>config: {reading.diff_entries} settings differ</div>")
    return "".join(lines) or '<span class="none">-</span>'


def _probe_line(item: str, reading: ProbeReading) -> str:
    title = ITEM_TITLES.get(item, item)
    if reading.reachable is False:
        value = "no reply" if reading.no_reply or reading.rtt_seconds is None else ""
        if reading.loss_ratio == 1.0:
            value = (value + " " if value else "") + "100% loss"
        css = ' class="bad"'
    else:
        parts = []
        if reading.rtt_seconds is not None:
            parts.append(f"{reading.rtt_seconds * 1000:.0f} ms")
        if reading.loss_ratio is not None:
            parts.append(f"{reading.loss_ratio:.0%} loss")
        value, css = ", ".join(parts) or "-", ""
    return (
        f'<div{css} data-probe="{escape(item)}" title="{escape(reading.source_ip or "gateway")} '
        f'→ {escape(reading.target_ip)}">{escape(title)}: {escape(value)}</div>'
    )


def _error_cell(code: str | None, message: str | None, failed: bool) -> str:
    if not code and not message:
        return '<td class="error"></td>'
    css = "error failed" if failed else "error"
    text = escape(message or "")
    return (
        f'<td class="{css}" title="{text}"><code>{escape(code or "")}</code>'
        f'<div class="message">{text}</div></td>'
    )
