"""The exporter end to end against the simulator's demo fleet, over real HTTP."""

from __future__ import annotations

import asyncio
import re
import subprocess
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from exporter.app import Exporter
from tests.demo_harness import running_demo_exporter
from tests.exporter_rig import samples
from tests.required_tools import PROMTOOL, tool

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEMO_GATEWAYS = {
    "vpn-hz1healthy",
    "vpn-hz2quota",
    "vpn-hz3unreachable",
    "vpn-hz4nodiag",
    "vpn-sg1inconsistent",
    "vpn-sg2lossy",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exporter() -> AsyncIterator[Exporter]:
    async with running_demo_exporter() as instance:
        yield instance


async def scrape(instance: Exporter, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(
            f"http://127.0.0.1:{instance.listener.port}/metrics", headers=headers
        )


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        body, value = line.rsplit(" ", 1)
        pairs = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', body))
        if all(pairs.get(k) == v for k, v in labels.items()):
            found.append(float(value))
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


async def test_every_demo_gateway_reports_a_successful_poll(exporter: Exporter) -> None:
    text = (await scrape(exporter)).text
    for gateway in DEMO_GATEWAYS:
        assert sample(text, "aliyun_vpn_poll_success", vpn_gateway_id=gateway) == 1


async def test_quota_gateway_shows_warning_and_error_levels(exporter: Exporter) -> None:
    text = (await scrape(exporter)).text
    assert (
        sample(
            text,
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz2quota",
            item="VpnRouteQuota",
            level="warning",
        )
        == 1
    )
    assert (
        sample(
            text,
            "aliyun_vpn_diagnose_item_status",
            vpn_gateway_id="vpn-hz2quota",
            item="VpnIPsecQuota",
            level="error",
        )
        == 1
    )
    used = sample(
        text, "aliyun_vpn_quota_used", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota"
    )
    limit = sample(
        text, "aliyun_vpn_quota_limit", vpn_gateway_id="vpn-hz2quota", item="VpnIPsecQuota"
    )
    assert 0.9 <= used / limit < 1.0


async def test_unreachable_probe_has_no_rtt(exporter: Exporter) -> None:
    text = (await scrape(exporter)).text
    assert (
        sample(
            text,
            "aliyun_vpn_probe_reachable",
            vpn_gateway_id="vpn-hz3unreachable",
            item="VcoUserInternetIpConnectivity",
        )
        == 0
    )
    assert not re.search(
        r'aliyun_vpn_probe_rtt_seconds\{[^}]*vpn_gateway_id="vpn-hz3unreachable"[^}]*item="VcoUserInternetIpConnectivity"',
        text,
    )


async def test_gateway_without_diagnosis_is_available_zero_and_polled_fine(
    exporter: Exporter,
) -> None:
    text = (await scrape(exporter)).text
    assert sample(text, "aliyun_vpn_diagnose_available", vpn_gateway_id="vpn-hz4nodiag") == 0
    # No diagnosis series about its connection (its DescribeVpnConnections status is there).
    diagnosis_lines = [
        line
        for line in text.splitlines()
        if line.startswith("aliyun_vpn_")
        and not line.startswith(("aliyun_vpn_connection_", "aliyun_vpn_tunnel_"))
    ]
    assert not [
        line
        for line in diagnosis_lines
        if 'vpn_gateway_id="vpn-hz4nodiag",vpn_connection_id' in line
    ]


async def test_inconsistent_config_and_lossy_probe(exporter: Exporter) -> None:
    text = (await scrape(exporter)).text
    assert sample(text, "aliyun_vpn_config_consistent", vpn_gateway_id="vpn-sg1inconsistent") == 0
    loss = sample(
        text,
        "aliyun_vpn_probe_packet_loss_ratio",
        vpn_gateway_id="vpn-sg2lossy",
        item="VcoPrivateConnectivity",
    )
    rtt = sample(
        text,
        "aliyun_vpn_probe_rtt_seconds",
        vpn_gateway_id="vpn-sg2lossy",
        item="VcoPrivateConnectivity",
    )
    assert 0.0 < loss < 0.5
    assert 0.05 < rtt < 1.0


async def test_api_self_metrics_count_requests(exporter: Exporter) -> None:
    text = (await scrape(exporter)).text
    assert sample(
        text, "aliyun_vpn_api_requests_total", action="GetVpnGatewayDiagnoseResult"
    ) >= len(DEMO_GATEWAYS)
    assert sample(text, "aliyun_vpn_build_info") == 1


@pytest.mark.parametrize("accept", ["text/plain", "application/openmetrics-text"])
async def test_process_and_python_metrics_are_exported_without_created_series(
    exporter: Exporter, accept: str
) -> None:
    text = (await scrape(exporter, accept=accept)).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    for name in (
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ):
        assert name in names, name
    assert sample(text, "python_info", implementation="CPython") == 1
    assert "aliyun_vpn_api_requests_total" in names
    assert not [name for name in names if name.endswith("_created")]


async def test_openmetrics_is_negotiated_and_ends_with_eof(exporter: Exporter) -> None:
    response = await scrape(
        exporter, accept="application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert 'aliyun_vpn_poll_success{target="default/cn-hangzhou"' in response.text


async def test_gzip_body_is_one_member_with_the_plain_text(exporter: Exporter) -> None:
    url = f"http://127.0.0.1:{exporter.listener.port}/metrics"
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", url, headers={"accept-encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            raw = b"".join([chunk async for chunk in zipped.aiter_raw()])
        plain = await client.get(url, headers={"accept-encoding": "identity"})
    member = zlib.decompressobj(wbits=31)
    text = member.decompress(raw)
    assert member.eof and member.unused_data == b"", "one gzip member, nothing after it"
    # The per-gateway families are identical; only the self-metrics move between scrapes.
    marker = b"# HELP aliyun_vpn_api_"
    assert text.split(marker)[0] == plain.content.split(marker)[0]
    assert marker in text


async def test_health_and_readiness(exporter: Exporter) -> None:
    async with httpx.AsyncClient() as client:
        base = f"http://127.0.0.1:{exporter.listener.port}"
        assert (await client.get(base + "/healthz")).status_code == 200
        assert (await client.get(base + "/readyz")).status_code == 200
        page = await client.get(base + "/")
    assert page.status_code == 200
    assert "vpn-hz2quota" in page.text


async def test_demo_exposition_passes_promtool_check_metrics(exporter: Exporter) -> None:
    promtool = tool(*PROMTOOL)
    text = (await scrape(exporter)).content
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""


async def test_each_demo_connection_tells_one_story(exporter: Exporter) -> None:
    """The demo never contradicts itself (issue 11 point 8): a connection whose private
    probe gets replies has its IPsec SA and both tunnels up, BGP and the health check
    fine; one whose private probe gets none has them all down."""

    def value(text: str, name: str, **labels: str) -> float | None:
        found = [v for _, v in samples(text, name, **labels)]
        return found[0] if found else None

    text = ""
    for _ in range(200):  # the connection listing runs beside the polls
        text = (await scrape(exporter)).text
        if len(samples(text, "aliyun_vpn_connection_health_check_status")) >= 6:
            break
        await asyncio.sleep(0.05)
    stories = {}
    for labels, _ in samples(text, "aliyun_vpn_probe_reachable", item="VcoPrivateConnectivity"):
        connection = labels["vpn_connection_id"]
        reachable = value(
            text,
            "aliyun_vpn_probe_reachable",
            item="VcoPrivateConnectivity",
            vpn_connection_id=connection,
        )
        up = [
            value(
                text,
                "aliyun_vpn_connection_ipsec_status",
                vpn_connection_id=connection,
                status="ipsec_sa_established",
            )
            == 1,
            all(
                v == 1
                for _, v in samples(
                    text,
                    "aliyun_vpn_tunnel_ipsec_status",
                    vpn_connection_id=connection,
                    status="ipsec_sa_established",
                )
            ),
            value(
                text,
                "aliyun_vpn_connection_bgp_status",
                vpn_connection_id=connection,
                status="success",
            )
            == 1,
            value(
                text,
                "aliyun_vpn_connection_health_check_status",
                vpn_connection_id=connection,
                status="success",
            )
            == 1,
        ]
        assert up == [reachable == 1] * 4, (connection, reachable, up)
        stories[labels["vpn_gateway_id"]] = reachable == 1
    assert stories == {
        "vpn-hz1healthy": True,
        "vpn-hz2quota": True,
        "vpn-hz3unreachable": False,
        "vpn-sg1inconsistent": False,
        "vpn-sg2lossy": True,
    }
    # Two different causes: hz3's peer does not answer on the Internet, sg1's does.
    public = "VcoUserInternetIpConnectivity"
    assert (
        value(text, "aliyun_vpn_probe_reachable", item=public, vpn_gateway_id="vpn-hz3unreachable")
        == 0
    )
    assert (
        value(text, "aliyun_vpn_probe_reachable", item=public, vpn_gateway_id="vpn-sg1inconsistent")
        == 1
    )
    assert sample(text, "aliyun_vpn_config_consistent", vpn_gateway_id="vpn-sg1inconsistent") == 0
