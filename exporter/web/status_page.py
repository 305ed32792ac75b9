"""The status page at `/`: every gateway x item with its level, and each gateway's last poll.

Server-rendered HTML with inline CSS and no external assets, so it works behind any proxy
and on an air-gapped network.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from exporter import __version__
from exporter.exposition.records import GatewayRecord
from exporter.model.diagnosis import Level

ITEM_TITLES = {
    "VpnRouteQuota": "route quota",
    "VpnIPsecQuota": "IPsec quota",
    "VpnPbrRouteQuota": "policy route quota",
    "RouteEntryConflict": "route conflicts",
    "VcoConfigConsistency": "config consistency",
    "VcoUserInternetIpConnectivity": "public IP probe",
    "VcoPrivateConnectivity": "private probe",
}
"""Short column titles; the full `DiagnoseName` is each column's tooltip."""
ITEM_ORDER = tuple(ITEM_TITLES)
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d232a}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #ccd;padding:.3rem .5rem}
th{background:#f2f4f7;text-align:left;font-weight:600}td.id{white-space:nowrap;font-family:monospace}
td.level-normal{background:#d7f5dd}td.level-warning{background:#ffe9a8}
td.level-error{background:#ffc9c9}td.level-none{color:#889}
td.poll-ok{color:#1b7d33}td.poll-failed{color:#b00020;font-weight:600}
.error{font-family:monospace;font-size:.8rem;min-width:16rem;max-width:32rem}
"""


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _item_levels(record: GatewayRecord) -> dict[str, Level | None]:
    levels: dict[str, Level | None] = {}
    connection = record.connections.get(record.latest_connection or "")
    if connection is not None:
        shown = connection.finished or connection.latest
        levels = {item.name: item.level for item in shown.items}
    return levels


def _row(record: GatewayRecord, items: list[str]) -> str:
    key = record.key
    levels = _item_levels(record)
    cells = []
    for item in items:
        level = levels.get(item)
        css = f"level-{level}" if level else "level-none"
        cells.append(f'<td class="{css}" data-item="{escape(item)}">{escape(level or "-")}</td>')
    poll = record.last_poll
    if poll is None:
        outcome, css, code, error = "pending", "poll-pending", "", ""
    else:
        outcome = "ok" if poll.success else "failed"
        css = "poll-ok" if poll.success else "poll-failed"
        code, error = poll.error_code or "", poll.error or ""
    available = {None: "unknown", True: "yes", False: "no diagnosis"}[record.available]
    return (
        f'<tr data-gateway="{escape(key.vpn_gateway_id)}">'
        f'<td class="id">{escape(key.target)}</td><td class="id">{escape(key.region_id)}</td>'
        f'<td class="id">{escape(key.vpn_gateway_id)}</td><td>{escape(available)}</td>'
        + "".join(cells)
        + f'<td class="id">{_time(poll.finished_at if poll else None)}</td>'
        f'<td class="{css}">{outcome}</td>'
        f'<td class="error" title="{escape(error)}">{escape(code)}</td></tr>'
    )


def render_status_page(records: Iterable[GatewayRecord]) -> str:
    """The whole page for the given gateway records."""
    rows = sorted(records, key=lambda r: (r.key.target, r.key.vpn_gateway_id))
    extra = sorted({name for r in rows for name in _item_levels(r)} - set(ITEM_ORDER))
    items = [*ITEM_ORDER, *extra]
    header = "".join(
        f'<th title="{escape(item)}">{escape(ITEM_TITLES.get(item, item))}</th>' for item in items
    )
    body = "\n".join(_row(record, items) for record in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aliyun-vpn-exporter</title>
<style>{STYLE}</style></head><body>
<h1>aliyun-vpn-exporter {escape(__version__)}</h1>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a></p>
<table id="gateways"><thead><tr><th>target</th><th>region</th><th>gateway</th>
<th>diagnosis</th>{header}<th>last poll</th><th>outcome</th><th>last error</th></tr></thead>
<tbody>
{body}
</tbody></table>
<p>Generated {_time(datetime.now(UTC).timestamp())}.</p>
</body></html>
"""
