"""The status page at `/`, as a person sees it: rendered by headless Chromium."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import pytest_asyncio

from exporter.app import Exporter
from tests.demo_harness import running_demo_exporter
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
    "--window-size=1400,700",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exporter() -> AsyncIterator[Exporter]:
    async with running_demo_exporter() as instance:
        yield instance


async def chromium(*args: str) -> bytes:
    binary = tool(*CHROMIUM)
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    return out


class Cells(HTMLParser):
    """Collects each gateway row's item cells: gateway → item → (css class, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, tuple[str, str]]] = {}
        self.links: list[str] = []
        self._gateway = ""
        self._cell: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("data-gateway"):
            self._gateway = attributes["data-gateway"] or ""
            self.rows[self._gateway] = {}
        elif tag == "td" and attributes.get("data-item") and self._gateway:
            self._cell = (attributes["data-item"] or "", attributes.get("class") or "")
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"] or "")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            item, css = self._cell
            self.rows[self._gateway][item] = (css, data.strip())
            self._cell = None


async def test_rendered_page_colours_each_gateway_item_by_level(exporter: Exporter) -> None:
    dom = await chromium("--dump-dom", f"http://127.0.0.1:{exporter.listener.port}/")
    cells = Cells()
    cells.feed(dom.decode())
    assert set(cells.rows) >= {"vpn-hz1healthy", "vpn-hz2quota", "vpn-sg1inconsistent"}
    assert cells.rows["vpn-hz1healthy"]["VpnRouteQuota"] == ("level-normal", "normal")
    assert cells.rows["vpn-hz2quota"]["VpnIPsecQuota"] == ("level-error", "error")
    assert cells.rows["vpn-hz2quota"]["VpnRouteQuota"] == ("level-warning", "warning")
    assert cells.rows["vpn-hz4nodiag"]["VpnRouteQuota"] == ("level-none", "-")
    assert {"/metrics", "/healthz"} <= set(cells.links)


async def test_rendered_page_shows_last_poll_outcome(exporter: Exporter) -> None:
    dom = (await chromium("--dump-dom", f"http://127.0.0.1:{exporter.listener.port}/")).decode()
    row = dom.split('data-gateway="vpn-hz4nodiag"')[1].split("</tr>")[0]
    assert "no diagnosis" in row
    assert 'class="poll-ok">ok<' in row


async def test_screenshot_of_the_status_page(exporter: Exporter, tmp_path: Path) -> None:
    shot = tmp_path / "status.png"
    await chromium(f"--screenshot={shot}", f"http://127.0.0.1:{exporter.listener.port}/")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
