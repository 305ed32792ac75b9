"""The status page at `/`: problems first, a summary, one page of gateways at a time.

Server-rendered HTML with inline CSS and no external assets (no script either), so it
works behind any proxy and on an air-gapped network; a `<meta refresh>` reloads it.

At 10,000 gateways a page of every gateway would be megabytes of HTML and a quarter of a
second of the event loop that also answers scrapes and absorbs polls. So the page keeps a
small summary per gateway (`exporter.web.status_rows.summarize`) for as long as its record
object is the fleet's current one, and the view built from them (sorted problems first,
counted) until a record changes. On the loop a request costs an identity check of the
records (and a copy of the mapping when one changed); re-summarizing the changed records,
sorting, filtering and rendering the page's rows (`?limit=`, at most `MAX_LIMIT`) run in a
worker thread: records are immutable, so the copied mapping is safe to read there.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from operator import attrgetter
from urllib.parse import urlencode

from exporter import __version__
from exporter.exposition.records import GatewayKey, GatewayRecord
from exporter.web.status_rows import (
    ConnectionCounts,
    RowContext,
    RowSummary,
    Severity,
    format_time,
    row_html,
    summarize,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
REFRESH_SECONDS = 30
DASHBOARDS = (
    ("Fleet overview", "d/aliyun-vpn-fleet/aliyun-vpn-fleet-overview"),
    ("Gateway detail", "d/aliyun-vpn-gateway/aliyun-vpn-gateway-detail"),
    ("Exporter health", "d/aliyun-vpn-exporter/aliyun-vpn-exporter-health"),
)
"""Grafana paths of the dashboards in grafana/dashboards/ (their uids)."""

STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem 1.25rem;color:#1d232a;font-size:14px}
h1{font-size:1.3rem;margin:.2rem 0 .6rem}a{color:#1f5fbf}
nav.links,nav.pages{margin:.4rem 0;font-size:.85rem}
.summary{display:flex;flex-wrap:wrap;gap:.5rem;margin:.6rem 0}
.card{border:1px solid #ccd;border-radius:6px;padding:.35rem .7rem;min-width:6.5rem;
text-decoration:none;color:inherit;background:#fafbfc}
.card b{display:block;font-size:1.25rem}.card.error{border-color:#d33;background:#fff0f0}
.card.warning{border-color:#e0a800;background:#fff8e1}.card.ok{border-color:#2e9d4f}
.card.active{outline:2px solid #1f5fbf}
form{display:inline}input{font-size:.85rem}
table{border-collapse:collapse;font-size:.8rem;width:100%;table-layout:fixed}
th,td{border:1px solid #d5d9e0;padding:.25rem .35rem;vertical-align:top;text-align:left;
overflow-wrap:anywhere}
th{background:#f2f4f7;font-weight:600}
tr.error td:first-child{border-left:4px solid #d33}
tr.warning td:first-child{border-left:4px solid #e0a800}
tr.ok td:first-child{border-left:4px solid #2e9d4f}
.badge{display:inline-block;padding:0 .35rem;border-radius:3px;font-weight:600;
font-family:system-ui,sans-serif;font-size:.72rem}
.badge.error{background:#ffc9c9}.badge.warning{background:#ffe9a8}
.badge.ok{background:#d7f5dd}.badge.no-diagnosis,.badge.pending{background:#e4e7ec}
.id{font-family:monospace;font-weight:600}.sub{color:#5b6573;font-size:.72rem}
ul.problems{margin:.15rem 0 0;padding-left:1rem;color:#a3001b;font-size:.72rem}
.conn{margin-bottom:.2rem}.cid{font-family:monospace;font-size:.75rem}
.chip{display:inline-block;border-radius:3px;padding:0 .3rem;margin:1px;font-size:.7rem;
white-space:nowrap;border:1px solid transparent}
.chip.ok,.chip.level-normal{background:#d7f5dd}.chip.level-warning{background:#ffe9a8}
.chip.bad,.chip.level-error{background:#ffc9c9;border-color:#d33}.chip.unknown{background:#e4e7ec}
td.values{font-size:.72rem}.values .bad{color:#a3001b}
.none{color:#889}
.poll-ok{color:#1b7d33}.poll-failed{color:#b00020;font-weight:600}.poll-pending{color:#889}
.stale{color:#a36b00;font-weight:600}
td.error{font-size:.72rem}td.error code{font-weight:600;overflow-wrap:anywhere}
td.error.failed code{color:#b00020}
td.error .message{overflow-wrap:anywhere;display:-webkit-box;-webkit-line-clamp:4;
-webkit-box-orient:vertical;overflow:hidden}
"""


@dataclass(frozen=True, slots=True)
class PageQuery:
    """What `?page=&limit=&state=&q=` ask for; anything unreadable falls back to the
    default (a status page answers, it does not argue)."""

    page: int = 1
    limit: int = DEFAULT_LIMIT
    state: Severity | None = None
    q: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PageQuery:
        states = {severity.css: severity for severity in Severity}
        return cls(
            page=max(1, _integer(params.get("page"), 1)),
            limit=min(MAX_LIMIT, max(1, _integer(params.get("limit"), DEFAULT_LIMIT))),
            state=states.get(params.get("state", "")),
            q=params.get("q", "").strip()[:100],
        )

    def link(self, *, page: int | None = None, state: Severity | bool | None = False) -> str:
        """This query's URL with another page or state (`state=None`: every state)."""
        chosen = self.state if state is False else state
        query = {
            "state": chosen.css if isinstance(chosen, Severity) else "",
            "q": self.q,
            "limit": self.limit if self.limit != DEFAULT_LIMIT else "",
            "page": (self.page if page is None else page) if page != 1 else "",
        }
        text = urlencode({name: value for name, value in query.items() if value})
        return "?" + text if text else "./"


def _integer(value: str | None, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class FleetView:
    """Every gateway's summary, problems first, and the counts of the summary."""

    rows: tuple[RowSummary, ...] = ()
    severities: tuple[int, ...] = field(default=(0,) * len(Severity))
    polls_failing: int = 0
    counts: ConnectionCounts = field(default_factory=ConnectionCounts)


def build_view(rows: list[RowSummary]) -> FleetView:
    """Sort the summaries (worst first, then target, region, gateway) and count them."""
    rows.sort(key=attrgetter("order"))
    severities = [0] * len(Severity)
    totals = [0] * 6
    polls_failing = 0
    for row in rows:
        severities[row.severity] += 1
        polls_failing += row.poll_failed
        c = row.counts
        values = (
            c.connections,
            c.ipsec_down,
            c.tunnels,
            c.tunnels_down,
            c.bgp_down,
            c.health_check_failed,
        )
        for index, value in enumerate(values):
            totals[index] += value
    return FleetView(tuple(rows), tuple(severities), polls_failing, ConnectionCounts(*totals))


Records = Mapping[GatewayKey, GatewayRecord]
Summaries = dict[GatewayKey, tuple[GatewayRecord, RowSummary]]


class StatusPage:
    """The page over the fleet's current records; `await page(query_params)` is the HTML."""

    def __init__(
        self,
        records: Callable[[], Records],
        grafana_url: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] | None = None,
        max_ages: Callable[[], Mapping[str, float | None]] = dict,
    ) -> None:
        self._records = records
        self._grafana_url = grafana_url
        self._max_ages = max_ages
        self._clock = clock or (lambda: datetime.now(UTC).timestamp())
        self._summaries: Summaries = {}
        self._snapshot: Records = {}
        self._view: FleetView | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, params: Mapping[str, str]) -> str:
        query = PageQuery.parse(params)
        async with self._lock:  # one worker at a time: it updates the summaries
            if not self._unchanged():
                self._snapshot = dict(self._records())
                self._view = None
            context = RowContext(self._clock(), self._grafana_url(), dict(self._max_ages()))
            return await asyncio.to_thread(self._render, self._snapshot, query, context)

    def _unchanged(self) -> bool:
        """Whether every current record is the one in the last snapshot."""
        records, snapshot = self._records(), self._snapshot
        if self._view is None or len(records) != len(snapshot):
            return False
        return all(snapshot.get(key) is record for key, record in records.items())

    def _render(self, snapshot: Records, query: PageQuery, context: RowContext) -> str:
        """(worker thread) Refresh the view if the snapshot is new, render one page."""
        view = self._view
        if view is None:
            previous, summaries = self._summaries, {}
            for key, record in snapshot.items():
                entry = previous.get(key)
                if entry is None or entry[0] is not record:
                    entry = (record, summarize(record))
                summaries[key] = entry
            self._summaries = summaries
            view = self._view = build_view([summary for _, summary in summaries.values()])
        return render_page(view, snapshot, query, context)


def _select(view: FleetView, query: PageQuery) -> Sequence[RowSummary]:
    rows: Sequence[RowSummary] = view.rows
    if query.state is not None:  # sorted by severity first: one contiguous run
        severities = [row.severity for row in rows]
        rows = rows[bisect_left(severities, query.state) : bisect_right(severities, query.state)]
    if query.q:
        needle = query.q.lower()
        rows = [row for row in rows if needle in row.search_text]
    return rows


def _summary(view: FleetView, query: PageQuery) -> str:
    total = len(view.rows)
    everything = escape(query.link(state=None, page=1))
    active = " active" if query.state is None else ""
    cards = [f'<a class="card{active}" href="{everything}"><b>{total}</b>gateways</a>']
    for severity in Severity:
        active = " active" if query.state is severity else ""
        cards.append(
            f'<a class="card {severity.css}{active}" data-count="{severity.css}" '
            f'href="{escape(query.link(state=severity, page=1))}">'
            f"<b>{view.severities[severity]}</b>{severity.label}</a>"
        )
    c = view.counts
    facts = [
        ("polls-failing", view.polls_failing, "polls failing"),
        ("ipsec-down", c.ipsec_down, f"of {c.connections} connections IPsec down"),
        ("tunnels-down", c.tunnels_down, f"of {c.tunnels} tunnels down"),
        ("bgp-down", c.bgp_down, "BGP not up"),
        ("health-check-failed", c.health_check_failed, "health checks failing"),
    ]
    cards += [
        f'<span class="card{" error" if value else ""}" data-count="{name}">'
        f"<b>{value}</b>{text}</span>"
        for name, value, text in facts
    ]
    return '<div class="summary">' + "".join(cards) + "</div>"


def _pages(query: PageQuery, shown: int, first: int, count: int) -> str:
    if not count:
        return '<nav class="pages">No gateway matches.</nav>'
    last_page = (count - 1) // query.limit + 1
    parts = [f"Gateways {first + 1} to {first + shown} of {count}"]
    if query.page > 1:
        previous = escape(query.link(page=query.page - 1))
        parts.append(f'<a rel="prev" href="{previous}">&lsaquo; previous</a>')
    if query.page < last_page:
        following = escape(query.link(page=query.page + 1))
        parts.append(f'<a rel="next" href="{following}">next &rsaquo;</a>')
    parts.append(f"page {min(query.page, last_page)} of {last_page}")
    return '<nav class="pages">' + " · ".join(parts) + "</nav>"


def render_page(view: FleetView, records: Records, query: PageQuery, context: RowContext) -> str:
    """One page of the status page (`query.limit` rows at most)."""
    rows = _select(view, query)
    first = (query.page - 1) * query.limit
    if first >= len(rows):
        first = max(0, (len(rows) - 1) // query.limit * query.limit)
    page = rows[first : first + query.limit]
    body = "\n".join(row_html(records[row.key], row.severity, context) for row in page)
    now, grafana_url = context.now, context.grafana_url
    links = ['<a href="/metrics">/metrics</a>', '<a href="/healthz">/healthz</a>']
    links.append('<a href="/readyz">/readyz</a>')
    if grafana_url:
        base = grafana_url.rstrip("/")
        links += [
            f'<a class="grafana" href="{escape(f"{base}/{path}")}">Grafana: {title}</a>'
            for title, path in DASHBOARDS
        ]
    state = f'<input type="hidden" name="state" value="{query.state.css}">' if query.state else ""
    search = (
        f'<form method="get">{state}<input type="search" name="q" value="{escape(query.q)}" '
        'placeholder="gateway, name, region, target" aria-label="filter"> '
        '<input type="submit" value="filter"></form>'
    )
    pages = _pages(query, len(page), first, len(rows))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aliyun-vpn-exporter</title>
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head><body>
<h1>aliyun-vpn-exporter {escape(__version__)}</h1>
<nav class="links">{" · ".join(links)}</nav>
{_summary(view, query)}
{search} {pages}
<table id="gateways"><colgroup><col style="width:19%"><col style="width:19%">
<col style="width:16%"><col style="width:16%"><col style="width:8%"><col style="width:7%">
<col style="width:15%"></colgroup><thead><tr><th>gateway</th><th>connections and tunnels</th>
<th>diagnosis items</th><th>quotas and probes</th><th>diagnosed</th><th>last poll</th>
<th>last error</th></tr></thead>
<tbody>
{body}
</tbody></table>
{pages}
<p class="sub">Generated {format_time(now)}; reloads every {REFRESH_SECONDS} s.</p>
</body></html>
"""
