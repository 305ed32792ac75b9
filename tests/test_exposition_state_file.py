"""The state file's format: everything exported survives a save and a load, and an
unusable file is refused with a reason, never half-read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.exposition.records import (
    GatewayKey,
    GatewayRecord,
    PollResult,
    with_diagnosis,
    with_failed_poll,
    with_info,
    with_missing_gateway,
    with_scheduled_diagnosis,
    with_vpn_connections,
    without_diagnosis,
)
from exporter.exposition.render import render_gateway
from exporter.exposition.state_file import (
    SavedState,
    SavedTarget,
    StateFileError,
    decode,
    encode,
    load,
    save,
)
from exporter.model.connection import Tunnel, VpnConnection
from exporter.model.diagnosis import (
    ConsistencyReading,
    DiagnoseItem,
    Diagnosis,
    Level,
    ProbeReading,
    QuotaReading,
    RouteConflictReading,
    UnknownReading,
)
from exporter.model.gateway import GatewayInfo

KEY = GatewayKey("prod/cn-hangzhou", "cn-hangzhou", "vpn-a")
ITEMS = (
    DiagnoseItem("VpnRouteQuota", Level.WARNING, QuotaReading("vpn_route", 85.0, 100.0)),
    DiagnoseItem(
        "VcoPrivateConnectivity", Level.NORMAL, ProbeReading("10.0.0.1", "192.168.0.1", 0.025, 0.0)
    ),
    DiagnoseItem(
        "VcoUserInternetIpConnectivity",
        Level.ERROR,
        ProbeReading("", "203.0.113.9", None, 1.0, no_reply=True),
    ),
    DiagnoseItem("VcoConfigConsistency", Level.ERROR, ConsistencyReading(False, 3, True)),
    DiagnoseItem("RouteEntryConflict", Level.NORMAL, RouteConflictReading(0)),
    DiagnoseItem("SomethingNew", None, UnknownReading(), parse_error="unexpected shape"),
)


def diagnosis(connection: str, *, running: bool = False) -> Diagnosis:
    return Diagnosis(
        vpn_gateway_id="vpn-a",
        diagnose_id=f"vpndgn-{connection}",
        connection_id=connection,
        begin_time=1_700_000_000.0,
        finish_time=None if running else 1_700_000_011.5,
        finished_count=3 if running else 6,
        total_count=6,
        items=ITEMS,
        request_id="req-1",
    )


def rich_record() -> GatewayRecord:
    record = with_diagnosis(
        GatewayRecord(KEY), diagnosis("vco-a"), PollResult(True, 1_700_000_100.0, 0.2)
    )
    record = with_scheduled_diagnosis(record, diagnosis("vco-b"), 1_700_000_200.0, 1_700_007_400.0)
    record = with_diagnosis(
        record, diagnosis("vco-b", running=True), PollResult(True, 1_700_000_300.0, 0.3)
    )
    record = with_info(record, GatewayInfo("edge", "vpc-1", "10M", "active", {"tag_env": "prod"}))
    tunnels = (
        Tunnel("tun-1", "master", "active", "ipsec_sa_established"),
        Tunnel("tun-2", "slave", None, "ipsec_sa_not_established"),
    )
    record = with_vpn_connections(
        record,
        (
            VpnConnection(
                "vco-a",
                "vpn-a",
                "a",
                "attached",
                None,
                "CEN",
                "tr-1",
                "success",
                "success",
                tunnels,
            ),
            VpnConnection(
                "vco-b", "vpn-a", "b", "active", "ipsec_sa_established", None, None, None, None
            ),
        ),
        1_700_000_250.0,
    )
    return with_failed_poll(
        record, PollResult(False, 1_700_000_400.0, 1.5, "Throttling.User", "throttled")
    )


def test_a_saved_record_loads_back_as_it_was_exported() -> None:
    records = (
        rich_record(),
        without_diagnosis(
            GatewayRecord(GatewayKey("t", "cn-hangzhou", "vpn-b")),
            PollResult(True, 5.0, 0.1, "InvalidVpnGatewayId.NotFound"),
        ),
        with_missing_gateway(
            GatewayRecord(GatewayKey("t", "cn-hangzhou", "vpn-c")),
            PollResult(False, 6.0, 0.1, "InvalidVpnGatewayInstanceId.NotFound"),
        ),
        GatewayRecord(GatewayKey("t", "cn-hangzhou", "vpn-never-polled")),
    )
    targets = {"t": SavedTarget("cn-hangzhou", "default", ("vpn-b",), 42.5)}
    state = decode(encode(SavedState(1_700_000_500.0, records, targets)))
    assert state.saved_at == 1_700_000_500.0
    assert state.targets == targets
    assert state.records == records
    assert [render_gateway(r) for r in state.records] == [render_gateway(r) for r in records]


def test_save_replaces_the_file_atomically_and_load_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.json"
    size = save(path, SavedState(1.0, (rich_record(),)), max_size=1 << 20)
    assert path.stat().st_size == size
    assert load(path, max_size=1 << 20).records == (rich_record(),)
    assert [p.name for p in path.parent.iterdir()] == ["state.json"], "no temporary left"


def test_a_state_over_the_bound_is_not_written_and_the_old_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save(path, SavedState(1.0), max_size=1 << 20)
    before = path.read_bytes()
    with pytest.raises(StateFileError, match="max_size"):
        save(path, SavedState(2.0, (rich_record(),) * 10), max_size=len(before) + 10)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    with pytest.raises(StateFileError, match="max_size"):
        load(path, max_size=len(before) - 1)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not an aliyun-vpn-exporter state file"),
        (json.dumps({"format": "something-else", "version": 1}).encode(), "not an aliyun"),
        (
            json.dumps({"format": "aliyun-vpn-exporter-state", "version": 99}).encode(),
            "format version 99",
        ),
        (
            json.dumps(
                {
                    "format": "aliyun-vpn-exporter-state",
                    "version": 1,
                    "saved_at": 1,
                    "gateways": [{"key": ["t", "r"]}],
                }
            ).encode(),
            "corrupt",
        ),
        (
            json.dumps(
                {
                    "format": "aliyun-vpn-exporter-state",
                    "version": 1,
                    "saved_at": 1,
                    "gateways": [
                        {
                            "key": ["t", "r", "vpn-a"],
                            "connections": {
                                "c": {
                                    "latest": {
                                        "gateway": "vpn-a",
                                        "id": "d",
                                        "connection": "c",
                                        "finished": 1,
                                        "total": 1,
                                        "items": [["X", "purple", ["unknown"]]],
                                    },
                                    "confirmed_at": 1,
                                }
                            },
                        }
                    ],
                }
            ).encode(),
            "corrupt",
        ),
    ],
)
def test_an_unusable_file_is_refused_with_its_reason(content: bytes, reason: str) -> None:
    with pytest.raises(StateFileError, match=reason):
        decode(content)
