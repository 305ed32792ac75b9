"""The rendered exposition: names, labels and values a scrape shows."""

from __future__ import annotations

import gzip

from exporter.exposition.gzip_segments import gzip_member
from exporter.exposition.records import (
    GatewayKey,
    GatewayRecord,
    PollResult,
    TargetRecord,
    with_diagnosis,
    with_failed_poll,
    with_missing_gateway,
    with_vpn_connections,
)
from exporter.exposition.render import (
    Exposition,
    escape_label_value,
    format_value,
    render_gateway,
    render_target,
)
from exporter.model.connection import VpnConnection
from exporter.model.diagnosis import (
    ConsistencyReading,
    DiagnoseItem,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
    UnknownReading,
)

KEY = GatewayKey("default/cn-hangzhou", "cn-hangzhou", "vpn-a")
BASE = 'target="default/cn-hangzhou",region_id="cn-hangzhou",vpn_gateway_id="vpn-a"'


def diagnosis(
    connection: str = "vco-a", *, finished: int = 7, items: tuple[DiagnoseItem, ...] = ()
) -> Diagnosis:
    return Diagnosis(
        vpn_gateway_id="vpn-a",
        diagnose_id="vpndgn-1",
        connection_id=connection,
        begin_time=1_700_000_000.0,
        finish_time=1_700_000_011.0,
        finished_count=finished,
        total_count=7,
        items=items,
    )


ITEMS = (
    DiagnoseItem("VpnRouteQuota", Level.WARNING, QuotaReading("vpn_route", 85.0, 100.0)),
    DiagnoseItem(
        "VcoPrivateConnectivity", Level.NORMAL, ProbeReading("192.168.1.1", "10.0.0.1", 0.012, 0.0)
    ),
    DiagnoseItem(
        "VcoUserInternetIpConnectivity", Level.ERROR, ProbeReading("", "1.2.3.4", None, 1.0)
    ),
    DiagnoseItem("VcoConfigConsistency", Level.ERROR, ConsistencyReading(False, 2)),
    DiagnoseItem("SomethingNew", None, UnknownReading()),
)


def text(record: GatewayRecord) -> str:
    exposition = Exposition()
    exposition.put(record.key, render_gateway(record))
    return b"".join(exposition.chunks()).decode()


def polled(record: GatewayRecord, d: Diagnosis, at: float = 100.0) -> GatewayRecord:
    return with_diagnosis(record, d, PollResult(True, at, 0.25))


def test_item_status_is_a_state_set_with_all_three_levels() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    labels = f'{BASE},vpn_connection_id="vco-a",item="VpnRouteQuota"'
    assert f'aliyun_vpn_diagnose_item_status{{{labels},level="normal"}} 0\n' in out
    assert f'aliyun_vpn_diagnose_item_status{{{labels},level="warning"}} 1\n' in out
    assert f'aliyun_vpn_diagnose_item_status{{{labels},level="error"}} 0\n' in out


def test_quota_series_are_gateway_scoped() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    assert (
        f'aliyun_vpn_quota_used{{{BASE},item="VpnRouteQuota",quota_name="vpn_route"}} 85\n' in out
    )
    assert (
        f'aliyun_vpn_quota_limit{{{BASE},item="VpnRouteQuota",quota_name="vpn_route"}} 100\n' in out
    )


def test_probe_without_reply_has_no_rtt_and_is_unreachable() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    probe = (
        f'{BASE},vpn_connection_id="vco-a",item="VcoUserInternetIpConnectivity",'
        'source_ip="",target_ip="1.2.3.4"'
    )
    assert f"aliyun_vpn_probe_reachable{{{probe}}} 0\n" in out
    assert f"aliyun_vpn_probe_packet_loss_ratio{{{probe}}} 1\n" in out
    assert "aliyun_vpn_probe_rtt_seconds{" + probe not in out


def test_reachable_probe_exports_rtt_in_seconds() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    probe = (
        f'{BASE},vpn_connection_id="vco-a",item="VcoPrivateConnectivity",'
        'source_ip="192.168.1.1",target_ip="10.0.0.1"'
    )
    assert f"aliyun_vpn_probe_rtt_seconds{{{probe}}} 0.012\n" in out
    assert f"aliyun_vpn_probe_reachable{{{probe}}} 1\n" in out


def test_config_consistency_and_diff_count() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    assert f'aliyun_vpn_config_consistent{{{BASE},vpn_connection_id="vco-a"}} 0\n' in out
    assert f'aliyun_vpn_config_diff_entries{{{BASE},vpn_connection_id="vco-a"}} 2\n' in out


def test_unknown_item_without_level_exports_no_item_series() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS)))
    assert "SomethingNew" not in out


def test_running_diagnosis_keeps_last_finished_items_and_shows_progress() -> None:
    finished = polled(GatewayRecord(KEY), diagnosis(items=ITEMS), at=100.0)
    running = diagnosis(
        finished=3,
        items=(DiagnoseItem("VpnRouteQuota", Level.ERROR, QuotaReading("vpn_route", 99.0, 100.0)),),
    )
    out = text(polled(finished, running, at=200.0))
    assert f"aliyun_vpn_diagnose_running{{{BASE}}} 1\n" in out
    assert f'aliyun_vpn_diagnose_items_finished{{{BASE},vpn_connection_id="vco-a"}} 3\n' in out
    assert (
        f'aliyun_vpn_quota_used{{{BASE},item="VpnRouteQuota",quota_name="vpn_route"}} 85\n' in out
    )


def test_first_running_diagnosis_shows_its_finished_items_without_finish_time() -> None:
    running = diagnosis(finished=1, items=ITEMS[:1])
    out = text(polled(GatewayRecord(KEY), running))
    assert (
        f'aliyun_vpn_quota_used{{{BASE},item="VpnRouteQuota",quota_name="vpn_route"}} 85\n' in out
    )
    assert "aliyun_vpn_diagnose_finish_timestamp_seconds{" not in out
    begin = "aliyun_vpn_diagnose_begin_timestamp_seconds"
    assert f'{begin}{{{BASE},vpn_connection_id="vco-a"}} 1700000000\n' in out


def test_stale_connection_is_dropped_but_fresh_one_stays() -> None:
    record = polled(GatewayRecord(KEY), diagnosis("vco-old", items=ITEMS), at=100.0)
    record = polled(record, diagnosis("vco-new", items=ITEMS), at=400.0)
    out = text(record.current(stale_after=200.0, now=450.0))
    assert 'vpn_connection_id="vco-new"' in out
    assert 'vpn_connection_id="vco-old"' not in out


def test_poll_gauges() -> None:
    out = text(polled(GatewayRecord(KEY), diagnosis(items=ITEMS), at=1234.5))
    assert f"aliyun_vpn_poll_success{{{BASE}}} 1\n" in out
    assert f"aliyun_vpn_poll_last_success_timestamp_seconds{{{BASE}}} 1234.5\n" in out
    assert f"aliyun_vpn_poll_duration_seconds{{{BASE}}} 0.25\n" in out


def test_label_values_are_escaped() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_each_family_has_one_help_and_type_and_is_contiguous() -> None:
    exposition = Exposition()
    for gateway in ("vpn-a", "vpn-b"):
        key = GatewayKey("t", "cn-hangzhou", gateway)
        exposition.put(key, render_gateway(polled(GatewayRecord(key), diagnosis(items=ITEMS))))
    exposition.put(
        ("target", "t"), render_target(TargetRecord("t", interval=60.0, effective_interval=90.0))
    )
    out = b"".join(exposition.chunks()).decode()
    seen: list[str] = []
    for line in out.splitlines():
        if line.startswith("# TYPE"):
            seen.append(line.split()[2])
    assert len(seen) == len(set(seen))
    assert 'aliyun_vpn_poll_effective_interval_seconds{target="t"} 90\n' in out


def test_put_invalidates_only_changed_families_and_gzip_matches_text() -> None:
    exposition = Exposition()
    record = polled(GatewayRecord(KEY), diagnosis(items=ITEMS))
    exposition.put(KEY, render_gateway(record))
    before = list(exposition.segments())
    later = polled(record, diagnosis(items=ITEMS), at=500.0)
    exposition.put(KEY, render_gateway(later))
    after = list(exposition.segments())
    unchanged = [a for a, b in zip(before, after, strict=True) if a is b]
    assert unchanged, "families whose text did not change must keep their cached bytes"
    assert len(unchanged) < len(after)
    text = b"".join(exposition.chunks())
    assert gzip.decompress(b"".join(gzip_member(exposition.segments()))) == text


def test_removed_gateway_leaves_no_series() -> None:
    exposition = Exposition()
    exposition.put(KEY, render_gateway(polled(GatewayRecord(KEY), diagnosis(items=ITEMS))))
    exposition.remove(KEY)
    assert b"".join(exposition.chunks()) == b""


def test_probe_with_unusable_values_exports_no_reachability() -> None:
    unusable = DiagnoseItem(
        "VcoPrivateConnectivity", Level.NORMAL, ProbeReading("10.0.0.1", "10.0.0.2", None, None)
    )
    out = text(polled(GatewayRecord(KEY), diagnosis(items=(unusable,))))
    assert "aliyun_vpn_probe_reachable{" not in out
    assert 'item="VcoPrivateConnectivity",level="normal"} 1' in out


def test_integer_values_are_formatted_like_floats() -> None:
    assert format_value(3) == "3"
    assert format_value(0.25) == "0.25"
    assert format_value(float("nan")) == "NaN"


def _connection(connection_id: str) -> VpnConnection:
    return VpnConnection(
        connection_id,
        "vpn-a",
        connection_id,
        "active",
        "ipsec_sa_established",
        None,
        None,
        None,
        None,
    )


def test_old_data_stays_without_stale_after() -> None:
    record = polled(GatewayRecord(KEY), diagnosis("vco-a", items=ITEMS), at=100.0)
    record = with_vpn_connections(record, (_connection("vco-a"),), 100.0)
    record = with_failed_poll(record, PollResult(False, 1_000_000.0, 1.0, "Throttling"))
    out = text(record.current(stale_after=None, now=1_000_000.0))
    assert "aliyun_vpn_quota_used{" in out
    assert "aliyun_vpn_connection_info{" in out
    assert f"aliyun_vpn_poll_success{{{BASE}}} 0\n" in out


def test_a_connection_a_listing_no_longer_names_loses_its_diagnosis_series() -> None:
    record = polled(GatewayRecord(KEY), diagnosis("vco-a", items=ITEMS), at=100.0)
    record = polled(record, diagnosis("vco-b", items=ITEMS), at=101.0)
    record = with_vpn_connections(record, (_connection("vco-a"), _connection("vco-b")), 102.0)
    record = with_vpn_connections(record, (_connection("vco-b"),), 200.0)
    out = text(record)
    assert 'vpn_connection_id="vco-b"' in out
    assert 'vpn_connection_id="vco-a"' not in out


def test_a_gateway_the_api_calls_unknown_keeps_its_data_and_is_not_found() -> None:
    record = polled(GatewayRecord(KEY), diagnosis(items=ITEMS))
    assert f"aliyun_vpn_gateway_found{{{BASE}}} 1\n" in text(record)
    missing = PollResult(False, 200.0, 0.1, "InvalidVpnGatewayInstanceId.NotFound")
    out = text(with_missing_gateway(record, missing))
    assert f"aliyun_vpn_gateway_found{{{BASE}}} 0\n" in out
    assert "aliyun_vpn_quota_used{" in out
    assert f"aliyun_vpn_poll_success{{{BASE}}} 0\n" in out
    assert f"aliyun_vpn_gateway_found{{{BASE}}} 1\n" in text(polled(record, diagnosis()))


def test_target_series_name_profile_region_and_diagnosis_ages() -> None:
    out = b"".join(
        render_target(
            TargetRecord(
                "t",
                profile="prod",
                region_id="cn-hangzhou",
                interval=60.0,
                effective_interval=75.0,
                last_launch_at=1234.5,
                diagnose_interval=3600.0,
                diagnose_max_age=7500.0,
            )
        )
    ).decode()
    assert 'aliyun_vpn_target_info{target="t",profile="prod",region_id="cn-hangzhou"} 1\n' in out
    assert 'aliyun_vpn_poll_last_launch_timestamp_seconds{target="t"} 1234.5\n' in out
    assert 'aliyun_vpn_diagnose_schedule_interval_seconds{target="t"} 3600\n' in out
    assert 'aliyun_vpn_diagnose_max_age_seconds{target="t"} 7500\n' in out
    manual = b"".join(render_target(TargetRecord("t", diagnose_max_age=86400.0))).decode()
    assert "aliyun_vpn_diagnose_schedule_interval_seconds" not in manual
    assert 'aliyun_vpn_diagnose_max_age_seconds{target="t"} 86400\n' in manual
