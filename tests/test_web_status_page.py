"""The status page at `/`, as a person sees it: rendered by headless Chromium.

The demo exporter runs with `web.grafana_url` set. Chromium's `--dump-dom` gives the DOM
after rendering; for layout, the page is saved with a small script appended that records
which cells overflow, and Chromium renders that file at 1280 and 1400 px.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from exporter.app import Exporter
from exporter.config.model import Config, WebSettings
from exporter.exposition.records import GatewayKey, GatewayRecord, PollResult, with_diagnosis
from exporter.model.connection import Tunnel, VpnConnection
from exporter.model.diagnosis import DiagnoseItem, Diagnosis, Level, QuotaReading
from exporter.model.gateway import GatewayInfo
from exporter.web.status_page import MAX_LIMIT, StatusPage
from tests.dashboard_queries import DASHBOARD_DIR, load
from tests.demo_harness import STARTUP_BOUND, running_demo_exporter
from tests.required_tools import tool

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHROMIUM = ("chromium", "apt-get install -y --no-install-recommends chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
GRAFANA = "https://grafana.example.com/monitoring"
PROBLEMS = ["vpn-sg1inconsistent", "vpn-hz2quota", "vpn-hz3unreachable"]
"""The demo's gateways at error, in the page's order: by target (default/ap-southeast-1
first), then region and ID."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exporter() -> AsyncIterator[Exporter]:
    async with running_demo_exporter(update={"web": WebSettings(grafana_url=GRAFANA)}) as demo:
        deadline = time.monotonic() + STARTUP_BOUND
        while not all(r.vpn_connections for r in demo.fleet.records.values()):
            assert time.monotonic() < deadline, "the demo's connections were never listed"
            await asyncio.sleep(0.05)
        yield demo


def url(exporter: Exporter, query: str = "") -> str:
    return f"http://127.0.0.1:{exporter.listener.port}/{query}"


async def chromium(*args: str, width: int = 1400) -> bytes:
    binary = tool(*CHROMIUM)
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--window-size={width},800",
            f"--user-data-dir={profile}",
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    return out


class Page(HTMLParser):
    """The rows (in order), their chips and cells, the summary counts and the links."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.states: dict[str, str] = {}
        self.chips: dict[str, list[dict[str, str]]] = {}
        self.text: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.links: list[str] = []
        self.meta: list[dict[str, str]] = []
        self._gateway = ""
        self._count: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "tr" and attributes.get("data-gateway"):
            self._gateway = attributes["data-gateway"]
            self.order.append(self._gateway)
            self.states[self._gateway] = attributes["data-state"]
            self.chips[self._gateway] = []
            self.text[self._gateway] = ""
        elif tag == "span" and self._gateway and "chip" in attributes.get("class", ""):
            self.chips[self._gateway].append(attributes)
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        elif tag == "meta":
            self.meta.append(attributes)
        if attributes.get("data-count"):
            self._count = attributes["data-count"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._gateway = ""

    def handle_data(self, data: str) -> None:
        if self._gateway:
            self.text[self._gateway] += data + " "
        if self._count is not None and data.strip().isdigit():
            self.counts[self._count] = int(data)
            self._count = None

    def chip(self, gateway: str, **wanted: str) -> dict[str, str]:
        (found,) = [
            chip
            for chip in self.chips[gateway]
            if all(chip.get(f"data-{k.replace('_', '-')}") == v for k, v in wanted.items())
        ]
        return found


def parse(html: bytes | str) -> Page:
    page = Page()
    page.feed(html.decode() if isinstance(html, bytes) else html)
    return page


async def rendered(exporter: Exporter, query: str = "") -> Page:
    return parse(await chromium("--dump-dom", url(exporter, query)))


async def test_problems_come_first_with_a_summary_of_the_fleet(exporter: Exporter) -> None:
    page = await rendered(exporter)
    assert page.order[:3] == PROBLEMS
    assert page.order[3:] == ["vpn-sg2lossy", "vpn-hz4nodiag", "vpn-hz1healthy"]
    assert [page.states[g] for g in page.order] == [
        *["error"] * 3,
        "warning",
        "no-diagnosis",
        "ok",
    ]
    assert page.counts == {
        "error": 3,
        "warning": 1,
        "no-diagnosis": 1,
        "pending": 0,
        "ok": 1,
        "polls-failing": 0,
        "ipsec-down": 2,
        "tunnels-down": 4,
        "bgp-down": 2,
        "health-check-failed": 2,
    }


async def test_connection_and_tunnel_state_show_why_a_gateway_is_down(exporter: Exporter) -> None:
    page = await rendered(exporter)
    hz3 = page.chip("vpn-hz3unreachable", ipsec="ike_sa_not_established")
    assert "bad" in hz3["class"]
    assert "bad" in page.chip("vpn-hz3unreachable", health_check="failed")["class"]
    assert "IKE SA not established" in page.text["vpn-hz3unreachable"]
    assert "health check failed" in page.text["vpn-hz3unreachable"]
    sg1 = [chip for chip in page.chips["vpn-sg1inconsistent"] if chip.get("data-tunnel")]
    assert [chip["data-status"] for chip in sg1] == ["ike_sa_not_established"] * 2
    assert all("bad" in chip["class"] for chip in sg1)
    healthy = page.chip("vpn-hz1healthy", ipsec="ipsec_sa_established")
    assert "ok" in healthy["class"].split()
    assert "ok" in page.chip("vpn-hz1healthy", bgp="success")["class"].split()


async def test_items_are_coloured_by_level(exporter: Exporter) -> None:
    page = await rendered(exporter)
    assert "level-normal" in page.chip("vpn-hz1healthy", item="VpnRouteQuota")["class"]
    quota = page.chip("vpn-hz2quota", item="VpnIPsecQuota")
    assert quota["data-level"] == "error" and "level-error" in quota["class"]
    assert page.chip("vpn-hz2quota", item="VpnRouteQuota")["data-level"] == "warning"
    assert not [chip for chip in page.chips["vpn-hz4nodiag"] if chip.get("data-item")]
    assert "no diagnosis yet" in page.text["vpn-hz4nodiag"]


async def test_values_show_quota_use_rtt_loss_and_diagnosis_age(exporter: Exporter) -> None:
    page = await rendered(exporter)
    assert re.search(r"IPsec quota \d+/100 \(\d+%\)", page.text["vpn-hz2quota"])
    assert re.search(r"private probe: \d+ ms, \d+% loss", page.text["vpn-sg2lossy"])
    assert "public probe: no reply 100% loss" in page.text["vpn-hz3unreachable"]
    assert re.search(r"\b\d+ (s|min) ago\b", page.text["vpn-hz1healthy"])
    assert "never" in page.text["vpn-hz4nodiag"]
    assert "InvalidVpnGatewayId.NotFound" in page.text["vpn-hz4nodiag"]


async def test_page_is_self_contained_refreshes_itself_and_links_to_grafana(
    exporter: Exporter,
) -> None:
    async with httpx.AsyncClient() as client:
        html = (await client.get(url(exporter))).text
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", html, re.I)
    page = await rendered(exporter)
    assert {"http-equiv": "refresh", "content": "30"} in page.meta
    assert {"/metrics", "/healthz"} <= set(page.links)
    uids = {load(path)["uid"] for path in DASHBOARD_DIR.glob("*.json")}
    grafana = [link for link in page.links if link.startswith(GRAFANA + "/d/")]
    assert {link.split("/")[5] for link in grafana} == uids
    assert (
        f"{GRAFANA}/d/aliyun-vpn-gateway/aliyun-vpn-gateway-detail"
        "?var-region_id=cn-hangzhou&var-vpn_gateway_id=vpn-hz2quota"
    ) in grafana


async def test_without_a_grafana_url_there_are_no_grafana_links(exporter: Exporter) -> None:
    html = await StatusPage(lambda: exporter.fleet.records)({})
    page = parse(html)
    assert page.order and not [link for link in page.links if "/d/" in link]


async def test_limit_state_search_and_pages(exporter: Exporter) -> None:
    async with httpx.AsyncClient() as client:
        first = await client.get(url(exporter, "?limit=2"))
        second = await client.get(url(exporter, "?limit=2&page=2"))
        errors = await client.get(url(exporter, "?state=error"))
        found = await client.get(url(exporter, "?q=SG2"))
        nonsense = await client.get(url(exporter, "?limit=x&page=-4&state=nope&q="))
        huge = await client.get(url(exporter, f"?limit={MAX_LIMIT * 10}"))
    assert all(r.status_code == 200 for r in (first, second, errors, found, nonsense, huge))
    assert parse(first.text).order == PROBLEMS[:2]
    assert 'rel="next" href="?limit=2&amp;page=2"' in first.text
    assert parse(second.text).order == [*PROBLEMS[2:], "vpn-sg2lossy"]
    assert "Gateways 3 to 4 of 6" in second.text
    assert parse(errors.text).order == PROBLEMS
    assert parse(found.text).order == ["vpn-sg2lossy"]
    assert len(parse(nonsense.text).order) == len(parse(huge.text).order) == 6


def record(gateway: str, *, error: str | None = None) -> GatewayRecord:
    key = GatewayKey("a-target-with-a-rather-long-name/cn-hangzhou", "cn-hangzhou", gateway)
    tunnels = (
        Tunnel(f"tun-{gateway}-1", "master", "active", "ipsec_sa_established"),
        Tunnel(f"tun-{gateway}-2", "slave", "active", "ike_sa_not_established"),
    )
    connection = VpnConnection(
        f"vco-{gateway}0123456789", gateway, "ipsec", "attached", "ipsec_sa_established", "CEN",
        "tr-1", "false", "failed", tunnels,
    )  # fmt: skip
    return GatewayRecord(
        key,
        last_poll=PollResult(
            success=error is None,
            finished_at=1.8e9,
            duration=1.0,
            error_code="ThisIsAnUnusuallyLongErrorCodeWithoutAnySpaces.AtAll" if error else None,
            error=error,
        ),
        available=False,
        info=GatewayInfo("a-gateway-name-that-goes-on-and-on", "vpc-1", "10M", "active"),
        vpn_connections=(connection, connection),
        vpn_connections_at=1.8e9,
    )


LAYOUT_PROBE = """<script>
const overflowing = [...document.querySelectorAll("td, th")]
  .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
  .map((cell) => cell.className + ": " + cell.textContent.slice(0, 40));
document.body.setAttribute("data-layout", JSON.stringify({
  page: document.documentElement.scrollWidth, viewport: window.innerWidth, overflowing}));
</script>"""


@pytest.mark.parametrize("width", [1280, 1400])
async def test_long_errors_and_ids_fit_the_window(width: int, tmp_path: Path) -> None:
    long_error = "The request was refused because " + "of a very long reason " * 20
    records = {r.key: r for r in (record("vpn-" + "x" * 40, error=long_error), record("vpn-short"))}
    html = await StatusPage(lambda: MappingProxyType(records), lambda: GRAFANA)({})
    page = tmp_path / "status.html"
    page.write_text(html.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = (await chromium("--dump-dom", page.as_uri(), width=width)).decode()
    (layout,) = re.findall(r'data-layout="([^"]*)"', dom)
    measured = json.loads(layout.replace("&quot;", '"'))
    assert measured["page"] <= measured["viewport"], measured
    assert measured["overflowing"] == []
    assert "ThisIsAnUnusuallyLongErrorCode" in dom and "BGP false" in dom


async def test_a_changed_record_shows_on_the_next_request() -> None:
    records = {r.key: r for r in (record("vpn-a"), record("vpn-b"))}
    page = StatusPage(lambda: records)
    assert parse(await page({})).states == {"vpn-a": "error", "vpn-b": "error"}
    assert "polls failing" in await page({})
    key = next(iter(records))
    records[key] = record("vpn-a", error="Throttling.User: flow control")
    after = parse(await page({}))
    assert after.counts["polls-failing"] == 1
    assert "last poll failed" in after.text["vpn-a"]
    assert "last ok never" in after.text["vpn-a"]
    del records[key]
    assert parse(await page({})).order == ["vpn-b"]


async def test_a_diagnosis_older_than_its_targets_max_age_is_marked_stale() -> None:
    finished = 1.8e9 - 2 * 86400
    diagnosis = Diagnosis("vpn-a", "d-1", "vco-a", finished - 60, finished, 1, 1, (
        DiagnoseItem("VpnRouteQuota", Level.NORMAL, QuotaReading("route", 5, 100)),
    ))  # fmt: skip
    poll = PollResult(success=True, finished_at=1.8e9, duration=1.0)
    diagnosed = with_diagnosis(replace(record("vpn-a"), vpn_connections=()), diagnosis, poll)
    records = {diagnosed.key: diagnosed}
    target = diagnosed.key.target
    fresh = parse(await StatusPage(lambda: records, clock=lambda: 1.8e9)({}))
    assert "2 d ago" in fresh.text["vpn-a"] and "stale" not in fresh.text["vpn-a"]
    page = StatusPage(lambda: records, clock=lambda: 1.8e9, max_ages=lambda: {target: 86400.0})
    stale = parse(await page({}))
    assert "2 d ago stale" in stale.text["vpn-a"]
    assert "diagnosis older than 1 d: its levels are old news" in stale.text["vpn-a"]


async def test_a_gateway_the_api_does_not_know_is_an_error() -> None:
    healthy = replace(record("vpn-a"), vpn_connections=())
    lost = replace(healthy, found=False)
    ok = parse(await StatusPage(lambda: {healthy.key: healthy})({}))
    assert ok.states == {"vpn-a": "no-diagnosis"}
    page = parse(await StatusPage(lambda: {lost.key: lost})({}))
    assert page.states == {"vpn-a": "error"}
    assert "gateway not found (InvalidVpnGatewayInstanceId.NotFound)" in page.text["vpn-a"]


async def test_grafana_url_must_be_an_http_url() -> None:
    base = {"targets": [{"region_id": "cn-hangzhou", "gateways": ["vpn-a"]}]}
    config = Config.model_validate({**base, "web": {"grafana_url": "https://g.example/sub/"}})
    assert config.web.grafana_url == "https://g.example/sub"
    with pytest.raises(ValidationError, match="grafana_url"):
        Config.model_validate({**base, "web": {"grafana_url": "grafana.example"}})


async def test_screenshot_of_the_status_page(exporter: Exporter, tmp_path: Path) -> None:
    shot = tmp_path / "status.png"
    await chromium(f"--screenshot={shot}", url(exporter))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
