"""Label values from the API are bounded: known values, a few new ones, then `other`."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition.label_bounds import BoundedValues, LabelBounds
from exporter.exposition.records import GatewayRecord, PollResult, with_diagnosis
from exporter.exposition.render import Exposition, render_gateway
from exporter.model.connection import VpnConnection
from exporter.model.diagnosis import DiagnoseItem, Diagnosis, Level, QuotaReading, UnknownReading
from tests.test_exposition_render import KEY


def record_with(items: tuple[DiagnoseItem, ...]) -> GatewayRecord:
    diagnosis = Diagnosis(
        vpn_gateway_id="vpn-a",
        diagnose_id="vpndgn-1",
        connection_id="vco-a",
        begin_time=1_700_000_000.0,
        finish_time=1_700_000_011.0,
        finished_count=len(items),
        total_count=len(items),
        items=items,
    )
    return with_diagnosis(GatewayRecord(KEY), diagnosis, PollResult(True, 100.0, 0.1))


def test_known_values_always_pass_and_new_ones_up_to_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = BoundedValues("state", ["active"], max_new=2)
    with caplog.at_level(logging.WARNING):
        seen = [values(v) for v in ["new1", "active", "new2", "new3", "new1", "new4", "active"]]
    assert seen == ["new1", "active", "new2", "other", "new1", "other", "active"]
    assert len([r for r in caplog.records if "exported as" in r.getMessage()]) == 1


def test_item_and_quota_labels_beyond_the_bound_are_other_without_duplicate_series() -> None:
    items = (
        DiagnoseItem("VpnRouteQuota", Level.NORMAL, QuotaReading("q-documented", 1.0, 10.0)),
        *(DiagnoseItem(f"FutureItem{n}", Level.WARNING, UnknownReading()) for n in range(6)),
        *(
            DiagnoseItem(name, Level.NORMAL, QuotaReading(f"quota-{name}", 1.0, 10.0))
            for name in ("VpnIPsecQuota", "VpnPbrRouteQuota")
        ),
    )
    bounds = LabelBounds(max_new=2)
    exposition = Exposition()
    exposition.put(KEY, render_gateway(record_with(items), bounds))
    text = b"".join(exposition.chunks()).decode()

    series: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.append((sample.name, tuple(sorted(sample.labels.items()))))
    assert len(series) == len(set(series)), "no duplicate series"
    status_items = {
        dict(labels)["item"] for name, labels in series if name == "aliyun_vpn_diagnose_item_status"
    }
    assert status_items == {
        "VpnRouteQuota",
        "VpnIPsecQuota",
        "VpnPbrRouteQuota",
        "FutureItem0",
        "FutureItem1",
        "other",
    }
    quota_names = {
        dict(labels)["quota_name"] for name, labels in series if name == "aliyun_vpn_quota_limit"
    }
    assert quota_names == {"q-documented", "quota-VpnIPsecQuota", "other"}


def test_connection_states_and_statuses_beyond_the_bound_are_other() -> None:
    connections = tuple(
        VpnConnection(
            vpn_connection_id=f"vco-{n}",
            vpn_gateway_id="vpn-a",
            name=f"c{n}",
            state=f"state-{n}",
            status=f"status-{n}",
            attach_type="CEN",
            transit_router_id=None,
            bgp_status=f"bgp-{n}",
            health_check_status="success",
        )
        for n in range(3)
    )
    record = replace(GatewayRecord(KEY), vpn_connections=connections, vpn_connections_at=100.0)
    exposition = Exposition()
    exposition.put(KEY, render_gateway(record, LabelBounds(max_new=2)))
    text = b"".join(exposition.chunks()).decode()
    assert 'vpn_connection_id="vco-2",state="other"' in text
    assert 'vpn_connection_id="vco-1",state="state-1"' in text
    assert 'vpn_connection_id="vco-2",status="other"} 1' in text
    assert "aliyun_vpn_connection_bgp_status{" in text and 'status="bgp-2"' not in text
