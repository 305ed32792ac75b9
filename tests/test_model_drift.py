"""Shape drift: what the parser read despite an unexpected form, apart from what it could
not read (a parse error). One event is never both."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.model.diagnosis import CONSISTENCY_ITEM, PROBE_ITEMS, QUOTA_ITEMS, QuotaReading
from exporter.model.drift import Drift, DriftKind
from exporter.model.parser import parse_diagnosis, read_description

QUOTA = {"quotaName": "vpn_quota_route", "quantity": 50, "used": 3}
PROBE = {"targetIp": "203.0.113.1", "srcIp": "10.0.0.1", "rtt": 3.5, "lossRate": 0.0}
ITEMS = sorted(QUOTA_ITEMS | PROBE_ITEMS | {CONSISTENCY_ITEM, "RouteEntryConflict"})


def drift_of(item: str, description: object) -> tuple[Drift, ...]:
    read = read_description(item, description)
    assert read.error is None, read.error
    return read.drift


def test_documented_forms_have_no_drift() -> None:
    assert drift_of("VpnRouteQuota", json.dumps(QUOTA)) == ()
    assert drift_of("VcoPrivateConnectivity", json.dumps(PROBE)) == ()
    consistency = {"vcoLackConf": False, "vcoDiffConf": [], "vcoConf": {}, "vcoRunningConf": {}}
    assert drift_of(CONSISTENCY_ITEM, json.dumps(consistency)) == ()
    assert drift_of("RouteEntryConflict", json.dumps({"conflictRoutes": []})) == ()


def test_numbers_as_strings_are_read_and_named_by_key() -> None:
    read = read_description("VpnRouteQuota", json.dumps({**QUOTA, "quantity": "50", "used": "3"}))
    assert read.error is None
    assert read.reading == QuotaReading("vpn_quota_route", 3.0, 50.0)
    assert read.drift == (Drift(DriftKind.NUMBER_AS_STRING, ("quantity", "used")),)


@pytest.mark.parametrize("used", ["-3", "NaN", "lots"])
def test_a_numeric_string_that_cannot_be_used_is_a_parse_error_only(used: str) -> None:
    read = read_description("VpnRouteQuota", json.dumps({**QUOTA, "used": used}))
    assert read.error is not None and "used" in read.error
    assert read.drift == ()


def test_unknown_keys_are_named_never_their_values() -> None:
    description = json.dumps({**QUOTA, "region": "cn-secret-value", "zone": "z"})
    (drift,) = drift_of("VpnIPsecQuota", description)
    assert drift == Drift(DriftKind.UNKNOWN_KEY, ("region", "zone"))
    assert "cn-secret-value" not in str(drift)


def test_encodings_the_docs_leave_open_are_read_as_drift() -> None:
    doubly = json.dumps(json.dumps(QUOTA))
    assert drift_of("VpnRouteQuota", doubly) == (Drift(DriftKind.DOUBLE_ENCODED),)
    assert drift_of("VpnRouteQuota", QUOTA) == (Drift(DriftKind.NOT_A_STRING),)
    # the API page's sample: escaped quotes, no outer quotes, a probe-shaped conflict item
    sample = '{\\"targetIp\\":\\"192.168.0.1\\",\\"srcIp\\":\\"192.168.1.1\\",\\"rtt\\":-1.0}'
    assert drift_of("RouteEntryConflict", sample) == (Drift(DriftKind.ESCAPED_JSON),)


def test_undecodable_description_is_a_parse_error_without_drift() -> None:
    read = read_description("VpnRouteQuota", json.dumps("<<" + json.dumps(QUOTA)))
    assert read.error is not None
    assert read.drift == ()


def test_boolean_text_and_empty_descriptions_are_drift() -> None:
    lack = json.dumps({"vcoLackConf": "false", "vcoDiffConf": []})
    assert drift_of(CONSISTENCY_ITEM, lack) == (
        Drift(DriftKind.BOOLEAN_AS_STRING, ("vcoLackConf",)),
    )
    assert drift_of(CONSISTENCY_ITEM, "") == (Drift(DriftKind.EMPTY),)
    # an empty quota is not read at all: a parse error, no drift
    read = read_description("VpnRouteQuota", "")
    assert (read.error, read.drift) == ("description is empty", ())


def test_unknown_items_and_levels_are_drift_in_a_diagnosis() -> None:
    payload = {
        "VpnGatewayId": "vpn-1",
        "ResourceInstanceId": "vco-1",
        "DiagnoseId": "vpndgn-1",
        "FinishedCount": 2,
        "TotalCount": 2,
        "DiagnoseResult": [
            {"DiagnoseName": "SomeFutureItem", "DiagnoseResultDescription": "{}"},
            {
                "DiagnoseName": "VpnRouteQuota",
                "DiagnoseResultDescription": json.dumps(QUOTA),
                "DiagnoseResultLevel": "critical",
            },
        ],
    }
    future, quota = parse_diagnosis(payload).items
    assert future.drift == (Drift(DriftKind.UNKNOWN_ITEM),)
    assert (quota.level, quota.drift) == (None, (Drift(DriftKind.UNKNOWN_LEVEL),))


NUMBERISH = st.one_of(
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 200).map(str),
    st.sampled_from(["NaN", "-1", "1e999", "", " 7 ", "x"]),
)


@given(
    item=st.sampled_from(ITEMS),
    fields=st.dictionaries(
        st.sampled_from(["quantity", "used", "rtt", "lossRate", "quotaName", "extra"]), NUMBERISH
    ),
)
def test_no_key_is_both_drift_and_a_parse_error(item: str, fields: dict[str, object]) -> None:
    read = read_description(item, json.dumps({**PROBE, **fields}))
    problems = read.error.split("; ") if read.error else []
    failed = {problem.split(":", 1)[0] for problem in problems}
    drifted = {key for drift in read.drift for key in drift.keys}
    assert not failed & drifted


def test_a_payload_with_many_unknown_keys_makes_a_bounded_shape() -> None:
    description = json.dumps({**QUOTA, **{f"k{n:04}" + "x" * 100: n for n in range(500)}})
    (drift,) = drift_of("VpnRouteQuota", description)
    assert drift.kind is DriftKind.UNKNOWN_KEY
    assert len(drift.keys) == 20
    assert all(len(key) <= 40 for key in drift.keys)
