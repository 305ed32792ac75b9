"""The parser: GetVpnGatewayDiagnoseResult responses and item descriptions → typed values.

`fixtures/get_vpn_gateway_diagnose_result.sample.json` is the API page's sample response,
copied verbatim (its description is escaped twice, as on the page).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.model.diagnosis import (
    CONSISTENCY_ITEM,
    PROBE_ITEMS,
    QUOTA_ITEMS,
    ROUTE_CONFLICT_ITEM,
    ConsistencyReading,
    Level,
    ProbeReading,
    QuotaReading,
    Reading,
    RouteConflictReading,
    UnknownReading,
)
from exporter.model.parser import ResponseShapeError, parse_description, parse_diagnosis

SAMPLE = Path(__file__).parent / "fixtures" / "get_vpn_gateway_diagnose_result.sample.json"
PUBLIC_PROBE = "VcoUserInternetIpConnectivity"
PRIVATE_PROBE = "VcoPrivateConnectivity"
ALL_ITEMS = sorted(QUOTA_ITEMS | PROBE_ITEMS | {CONSISTENCY_ITEM, ROUTE_CONFLICT_ITEM})
MISSING = object()
QUOTA_DESCRIPTION = '{"quotaName":"vpn_quota_route","quantity":50,"used":3}'


def sample() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(SAMPLE.read_text())
    return result


def response(**changes: object) -> dict[str, Any]:
    """A valid finished response; a change to `MISSING` removes the key."""
    payload: dict[str, Any] = {
        "BeginTime": "2024-05-01T10:00:00Z",
        "DiagnoseId": "vpndgn-1",
        "DiagnoseResult": [
            {
                "DiagnoseName": "VpnRouteQuota",
                "DiagnoseResultDescription": QUOTA_DESCRIPTION,
                "DiagnoseResultLevel": "normal",
            }
        ],
        "FinishTime": "2024-05-01T10:00:09Z",
        "FinishedCount": 7,
        "RequestId": "REQ-1",
        "ResourceInstanceId": "vco-1",
        "ResourceType": "IPsec",
        "TotalCount": 7,
        "VpnGatewayId": "vpn-1",
    }
    for key, value in changes.items():
        if value is MISSING:
            del payload[key]
        else:
            payload[key] = value
    return payload


def read(item: str, description: object) -> Reading:
    """The reading of a description that must parse without error."""
    reading, error = parse_description(item, description)
    assert error is None
    return reading


def probe(**fields: object) -> str:
    return json.dumps({"srcIp": "192.168.1.1", "targetIp": "10.0.0.1", **fields})


# --- the API page's sample -------------------------------------------------------------


def test_api_sample_response_is_read() -> None:
    diagnosis = parse_diagnosis(sample())
    assert diagnosis.vpn_gateway_id == "vpn-uf6fzwp0ck3frwtbk****"
    assert diagnosis.connection_id == "vco-uf6huqsu63azl7mdp****"
    assert diagnosis.diagnose_id == "vpndgn-uf6sgneym02lxyuv4****"
    assert diagnosis.request_id == "312C4D5A-6563-5FC6-8C6E-A43A5A316FEB"
    assert diagnosis.begin_time == 1671082137.0  # 2022-12-15T05:28:57Z
    assert diagnosis.finish_time == 1671082148.0  # 2022-12-15T05:29:08Z
    assert (diagnosis.finished_count, diagnosis.total_count) == (7, 7)
    assert not diagnosis.running


def test_api_sample_route_conflict_with_a_probe_shaped_payload_has_no_count_and_no_error() -> None:
    (item,) = parse_diagnosis(sample()).items
    assert item.name == ROUTE_CONFLICT_ITEM
    assert item.level is Level.NORMAL
    assert item.reading == RouteConflictReading(conflicts=None)
    assert item.parse_error is None


def test_api_sample_description_escaped_twice_reads_as_a_probe_without_reply() -> None:
    description = sample()["DiagnoseResult"][0]["DiagnoseResultDescription"]
    assert description.startswith('{\\"targetIp')  # quotes still escaped after decoding
    assert read(PRIVATE_PROBE, description) == ProbeReading(
        source_ip="192.168.1.1",
        target_ip="192.168.0.1",
        rtt_seconds=None,
        loss_ratio=1.0,
        no_reply=True,
    )


# --- encodings ---------------------------------------------------------------------------


def test_quota_item_is_read() -> None:
    reading = read("VpnRouteQuota", QUOTA_DESCRIPTION)
    assert reading == QuotaReading(quota_name="vpn_quota_route", used=3.0, limit=50.0)


def test_doubly_encoded_description_is_read() -> None:
    description = json.dumps(json.dumps({"quotaName": "q", "quantity": 50, "used": 3}))
    assert read("VpnIPsecQuota", description) == QuotaReading("q", used=3.0, limit=50.0)


def test_description_already_decoded_to_a_dict_is_read() -> None:
    reading = read("VpnPbrRouteQuota", {"quotaName": "q", "quantity": 50, "used": 3})
    assert reading == QuotaReading("q", used=3.0, limit=50.0)


def test_quota_item_with_numbers_as_strings_is_read() -> None:
    reading = read("VpnRouteQuota", '{"quotaName":"q","quantity":"85","used":" 12.5 "}')
    assert reading == QuotaReading("q", used=12.5, limit=85.0)


def test_probe_with_numbers_as_strings_is_read() -> None:
    reading = read(PRIVATE_PROBE, probe(rtt="12.5", lossRate="25"))
    assert isinstance(reading, ProbeReading)
    assert (reading.rtt_seconds, reading.loss_ratio) == (0.0125, 0.25)


def test_new_keys_in_a_description_are_ignored() -> None:
    description = '{"quotaName":"q","quantity":50,"used":3,"region":"cn-hangzhou","extra":[1]}'
    assert read("VpnRouteQuota", description) == QuotaReading("q", used=3.0, limit=50.0)


# --- missing and bad values --------------------------------------------------------------


def test_quota_item_without_quota_name_is_named_after_its_item() -> None:
    reading = read("VpnIPsecQuota", '{"quantity":10,"used":1}')
    assert reading == QuotaReading("VpnIPsecQuota", used=1.0, limit=10.0)


def test_quota_name_that_is_not_a_string_is_an_error_and_the_item_names_the_quota() -> None:
    reading, error = parse_description("VpnIPsecQuota", '{"quotaName":7,"quantity":10,"used":1}')
    assert reading == QuotaReading("VpnIPsecQuota", used=1.0, limit=10.0)
    assert error == "quotaName: 7 is not a string"


def test_quota_item_missing_a_key_keeps_the_rest_and_reports_the_key() -> None:
    reading, error = parse_description("VpnRouteQuota", '{"quotaName":"q","quantity":50}')
    assert reading == QuotaReading("q", used=None, limit=50.0)
    assert error == "used: missing"


def test_probe_missing_its_target_ip_keeps_the_numbers_and_reports_the_key() -> None:
    reading, error = parse_description(PUBLIC_PROBE, '{"rtt":5,"lossRate":0}')
    assert reading == ProbeReading("", "", rtt_seconds=0.005, loss_ratio=0.0)
    assert error == "targetIp: missing"


def test_every_bad_field_is_named_in_the_error() -> None:
    reading, error = parse_description("VpnRouteQuota", '{"quantity":"lots","used":-4}')
    assert reading == QuotaReading("VpnRouteQuota", used=None, limit=None)
    assert error == 'used: -4.0 is negative; quantity: "lots" is not a finite number'


def test_negative_quota_number_becomes_none_and_is_an_error() -> None:
    reading, error = parse_description("VpnRouteQuota", '{"quotaName":"q","quantity":-50,"used":3}')
    assert reading == QuotaReading("q", used=3.0, limit=None)
    assert error == "quantity: -50.0 is negative"


@pytest.mark.parametrize(
    "used",
    ["NaN", "Infinity", "-Infinity", '"NaN"', '"inf"', "1e999", '"1e999"', "true", "[3]", '"3%"'],
)
def test_quota_number_that_is_not_finite_or_not_a_number_becomes_none_and_is_an_error(
    used: str,
) -> None:
    reading, error = parse_description(
        "VpnRouteQuota", f'{{"quotaName":"q","quantity":50,"used":{used}}}'
    )
    assert reading == QuotaReading("q", used=None, limit=50.0)
    assert error is not None and error.startswith("used: ")


def test_negative_zero_is_read_as_zero() -> None:
    reading = read("VpnRouteQuota", '{"quotaName":"q","quantity":50,"used":-0.0}')
    assert isinstance(reading, QuotaReading) and reading.used == 0.0
    assert math.copysign(1.0, reading.used) == 1.0


@pytest.mark.parametrize(
    "garbage", ["garbage", "{", "<html>502 Bad Gateway</html>", '{"a":1}x', '"text"']
)
def test_non_json_garbage_gives_an_unknown_reading_and_an_error(garbage: str) -> None:
    for item in ALL_ITEMS:
        reading, error = parse_description(item, garbage)
        assert reading == UnknownReading()
        assert error is not None and error.startswith("description is not JSON")


def test_deeply_nested_description_gives_an_unknown_reading_and_an_error() -> None:
    reading, error = parse_description("VpnRouteQuota", "[" * 100_000)
    assert reading == UnknownReading()
    assert error == "description is nested too deeply"


def test_json_that_is_not_an_object_is_an_error_for_a_quota() -> None:
    reading, error = parse_description("VpnRouteQuota", "[50, 3]")
    assert reading == UnknownReading()
    assert error == "description is a JSON array, not an object"


@pytest.mark.parametrize("empty", [None, "", "  ", "null", '""'])
def test_empty_description_is_an_error_for_a_probe(empty: object) -> None:
    assert parse_description(PUBLIC_PROBE, empty) == (UnknownReading(), "description is empty")


# --- probes ------------------------------------------------------------------------------


def test_probe_rtt_in_milliseconds_is_exported_in_seconds() -> None:
    reading = read(PRIVATE_PROBE, probe(rtt=12.5, lossRate=0.0))
    assert reading == ProbeReading("192.168.1.1", "10.0.0.1", rtt_seconds=0.0125, loss_ratio=0.0)
    assert isinstance(reading, ProbeReading) and reading.reachable is True


@pytest.mark.parametrize("rtt", [-1, -1.0, "-1", -3])
def test_probe_negative_rtt_means_no_reply_and_is_not_an_error(rtt: object) -> None:
    reading = read(PUBLIC_PROBE, json.dumps({"targetIp": "47.1.1.1", "rtt": rtt, "lossRate": 100}))
    assert isinstance(reading, ProbeReading)
    assert reading.rtt_seconds is None and reading.no_reply
    assert reading.reachable is False


def test_probe_loss_rate_100_is_a_loss_ratio_of_1_and_unreachable() -> None:
    reading = read(PRIVATE_PROBE, probe(rtt=20, lossRate=100))
    assert isinstance(reading, ProbeReading)
    assert reading.loss_ratio == 1.0
    assert reading.reachable is False


def test_probe_with_partial_loss_is_reachable() -> None:
    reading = read(PRIVATE_PROBE, probe(rtt=20, lossRate=40))
    assert isinstance(reading, ProbeReading)
    assert reading.loss_ratio == 0.4 and reading.reachable is True


@pytest.mark.parametrize("loss", [100.5, -5, "150"])
def test_probe_loss_rate_outside_0_to_100_becomes_none_and_is_an_error(loss: object) -> None:
    reading, error = parse_description(PRIVATE_PROBE, probe(rtt=20, lossRate=loss))
    assert isinstance(reading, ProbeReading)
    assert reading.loss_ratio is None and reading.rtt_seconds == 0.02
    assert error is not None and error.startswith("lossRate: ")


def test_probe_with_unusable_rtt_is_not_taken_for_a_probe_without_reply() -> None:
    reading, error = parse_description(PRIVATE_PROBE, probe(rtt="fast", lossRate=0))
    assert isinstance(reading, ProbeReading)
    assert reading.rtt_seconds is None and not reading.no_reply
    assert reading.reachable is True  # no packet lost: replies came
    assert error == 'rtt: "fast" is not a finite number'


def test_probe_with_neither_rtt_nor_loss_usable_has_unknown_reachability() -> None:
    reading, error = parse_description(PRIVATE_PROBE, probe(rtt=None, lossRate="NaN"))
    assert isinstance(reading, ProbeReading)
    assert reading.reachable is None
    assert error is not None


def test_public_probe_has_no_source_ip_even_if_the_payload_names_one() -> None:
    reading = read(PUBLIC_PROBE, probe(rtt=30, lossRate=0))
    assert isinstance(reading, ProbeReading)
    assert (reading.source_ip, reading.target_ip) == ("", "10.0.0.1")


def test_private_probe_src_ip_is_the_vpc_side_and_target_ip_the_peer_side() -> None:
    description = '{"targetIp":"172.16.0.9","srcIp":"192.168.1.1","rtt":3,"lossRate":0}'
    reading = read(PRIVATE_PROBE, description)
    assert isinstance(reading, ProbeReading)
    assert (reading.source_ip, reading.target_ip) == ("192.168.1.1", "172.16.0.9")


# --- VcoConfigConsistency (shape undocumented) --------------------------------------------


@pytest.mark.parametrize(
    "description",
    [
        {"vcoDiffConf": [], "vcoLackConf": []},
        {"vcoDiffConf": {}, "vcoLackConf": ""},
        {"vcoDiffConf": None, "vcoLackConf": None},
        {"vcoDiffConf": "[]", "vcoLackConf": "{}", "vcoConf": {"ike": "x"}, "vcoRunningConf": 3},
    ],
)
def test_consistency_with_empty_differences_and_nothing_lacking_is_consistent(
    description: dict[str, object],
) -> None:
    assert read(CONSISTENCY_ITEM, json.dumps(description)) == ConsistencyReading(True, 0, True)


def test_consistency_with_a_list_of_differences_counts_them() -> None:
    description = {"vcoDiffConf": [{"name": "ike_version"}, {"name": "psk"}], "vcoLackConf": []}
    assert read(CONSISTENCY_ITEM, description) == ConsistencyReading(False, 2, True)


def test_consistency_with_an_object_of_differences_counts_its_keys() -> None:
    description = {"vcoDiffConf": {"ike_version": ["ikev1", "ikev2"]}, "vcoLackConf": []}
    assert read(CONSISTENCY_ITEM, description) == ConsistencyReading(False, 1, True)


def test_consistency_with_differences_as_json_text_counts_them() -> None:
    description = {"vcoDiffConf": '["ike_version","psk","dh_group"]', "vcoLackConf": "[]"}
    assert read(CONSISTENCY_ITEM, json.dumps(json.dumps(description))) == ConsistencyReading(
        False, 3, True
    )


def test_consistency_with_settings_the_peer_lacks_is_inconsistent() -> None:
    reading = read(CONSISTENCY_ITEM, {"vcoLackConf": ["ike"]})
    assert reading == ConsistencyReading(False, None, peer_available=True)


@pytest.mark.parametrize("nothing_lacking", [False, "false", "False"])
def test_consistency_with_vco_lack_conf_false_and_no_differences_is_consistent(
    nothing_lacking: object,
) -> None:
    description = {"vcoLackConf": nothing_lacking, "vcoDiffConf": []}
    assert read(CONSISTENCY_ITEM, json.dumps(description)) == ConsistencyReading(True, 0, True)


def test_consistency_with_vco_lack_conf_false_and_differences_is_inconsistent() -> None:
    description = {"vcoLackConf": False, "vcoDiffConf": [{"name": "psk"}]}
    assert read(CONSISTENCY_ITEM, description) == ConsistencyReading(False, 1, True)


@pytest.mark.parametrize("unavailable", [True, "true"])
def test_consistency_with_vco_lack_conf_true_is_unknown_with_the_peer_unavailable(
    unavailable: object,
) -> None:
    description = {"vcoLackConf": unavailable, "vcoDiffConf": [], "vcoRunningConf": {}}
    reading, error = parse_description(CONSISTENCY_ITEM, json.dumps(description))
    assert error is None
    assert reading == ConsistencyReading(consistent=None, diff_entries=None, peer_available=False)


def test_consistency_missing_one_of_the_two_keys_is_unknown() -> None:
    assert read(CONSISTENCY_ITEM, {"vcoDiffConf": []}) == ConsistencyReading(None, 0)


@pytest.mark.parametrize("value", ["none", "ike_version", 0, 2, True, "false"])
def test_consistency_with_free_text_or_scalars_is_unknown(value: object) -> None:
    reading = read(CONSISTENCY_ITEM, {"vcoDiffConf": value, "vcoLackConf": []})
    assert reading == ConsistencyReading(None, None, peer_available=True)


@pytest.mark.parametrize("empty", [None, "", "null"])
def test_empty_consistency_description_is_unknown_without_error(empty: object) -> None:
    assert read(CONSISTENCY_ITEM, empty) == ConsistencyReading(None, None)


def test_consistency_description_that_is_not_an_object_is_an_error() -> None:
    reading, error = parse_description(CONSISTENCY_ITEM, '["psk"]')
    assert reading == UnknownReading()
    assert error == "description is a JSON array, not an object"


# --- RouteEntryConflict (shape undocumented) ----------------------------------------------


def test_route_conflict_top_level_list_is_counted() -> None:
    description = '[{"destination":"10.0.0.0/8"},{"destination":"10.1.0.0/16"}]'
    assert read(ROUTE_CONFLICT_ITEM, description) == RouteConflictReading(conflicts=2)


@pytest.mark.parametrize("key", ["conflictRoutes", "routes", "RouteEntryConflicts", "conflicts"])
def test_route_conflict_single_list_under_a_route_or_conflict_key_is_counted(key: str) -> None:
    description = {key: [{"destination": "10.0.0.0/8"}], "checkedAt": "now", "total": 9}
    assert read(ROUTE_CONFLICT_ITEM, description) == RouteConflictReading(conflicts=1)


def test_route_conflict_list_given_as_json_text_is_counted() -> None:
    description = {"conflictRoutes": '["10.0.0.0/8","10.1.0.0/16","10.2.0.0/16"]'}
    assert read(ROUTE_CONFLICT_ITEM, description) == RouteConflictReading(conflicts=3)


def test_route_conflict_with_several_route_lists_is_not_counted() -> None:
    description = {"routes": ["10.0.0.0/8"], "conflictRoutes": []}
    assert read(ROUTE_CONFLICT_ITEM, description) == RouteConflictReading(conflicts=None)


def test_route_conflict_list_under_an_unrelated_key_is_not_counted() -> None:
    assert read(ROUTE_CONFLICT_ITEM, {"hops": [1, 2]}) == RouteConflictReading(conflicts=None)


@pytest.mark.parametrize("description", [None, "", "{}", "3", "true", '{"count": 2}'])
def test_route_conflict_without_a_list_has_no_count_and_no_error(description: object) -> None:
    assert read(ROUTE_CONFLICT_ITEM, description) == RouteConflictReading(conflicts=None)


# --- unknown items and levels --------------------------------------------------------------


@pytest.mark.parametrize("description", ['{"anything": 1}', "not json at all", None])
def test_unknown_item_gives_an_unknown_reading_without_error(description: object) -> None:
    assert parse_description("VpnBgpSessionHealth", description) == (UnknownReading(), None)


def test_unknown_item_is_kept_with_its_level() -> None:
    entry = {"DiagnoseName": "VpnBgpSessionHealth", "DiagnoseResultLevel": "warning"}
    (item,) = parse_diagnosis(response(DiagnoseResult=[entry])).items
    assert (item.name, item.level, item.reading, item.parse_error) == (
        "VpnBgpSessionHealth",
        Level.WARNING,
        UnknownReading(),
        None,
    )


def test_item_with_unreadable_description_keeps_its_level_and_error() -> None:
    entry = {
        "DiagnoseName": "VpnRouteQuota",
        "DiagnoseResultDescription": "oops",
        "DiagnoseResultLevel": "error",
    }
    (item,) = parse_diagnosis(response(DiagnoseResult=[entry])).items
    assert item.level is Level.ERROR
    assert item.reading == UnknownReading()
    assert item.parse_error is not None and item.parse_error.startswith("description is not JSON")


@pytest.mark.parametrize(
    ("raw", "level"),
    [("normal", Level.NORMAL), ("WARNING", Level.WARNING), (" Error ", Level.ERROR)],
)
def test_levels_are_read_case_insensitively(raw: str, level: Level) -> None:
    entry = {"DiagnoseName": "VpnRouteQuota", "DiagnoseResultLevel": raw}
    assert parse_diagnosis(response(DiagnoseResult=[entry])).items[0].level is level


@pytest.mark.parametrize("raw", ["critical", "", 2, None])
def test_unknown_level_is_none(raw: object) -> None:
    entry = {"DiagnoseName": "VpnRouteQuota", "DiagnoseResultLevel": raw}
    assert parse_diagnosis(response(DiagnoseResult=[entry])).items[0].level is None


# --- the envelope ------------------------------------------------------------------------


def test_running_diagnosis_is_marked_running_and_keeps_its_finished_items() -> None:
    diagnosis = parse_diagnosis(response(FinishedCount=3, FinishTime=MISSING))
    assert diagnosis.running
    assert (diagnosis.finished_count, diagnosis.total_count) == (3, 7)
    assert diagnosis.finish_time is None
    assert [item.name for item in diagnosis.items] == ["VpnRouteQuota"]


@pytest.mark.parametrize("result", [MISSING, None, []])
def test_diagnosis_without_items_yet_has_none(result: object) -> None:
    diagnosis = parse_diagnosis(response(DiagnoseResult=result, FinishedCount=0))
    assert diagnosis.items == ()
    assert diagnosis.running


def test_counts_given_as_strings_are_read() -> None:
    diagnosis = parse_diagnosis(response(FinishedCount="5", TotalCount=7.0))
    assert (diagnosis.finished_count, diagnosis.total_count) == (5, 7)


@pytest.mark.parametrize(
    "value",
    [MISSING, None, "", "yesterday", "2022-12-15", "0001-01-01T00:00:00Z", 1671082137, "T"],
)
def test_missing_or_unreadable_times_are_none(value: object) -> None:
    diagnosis = parse_diagnosis(response(BeginTime=value, FinishTime=value))
    assert diagnosis.begin_time is None and diagnosis.finish_time is None


def test_times_with_an_offset_are_converted_to_utc() -> None:
    diagnosis = parse_diagnosis(response(BeginTime="2022-12-15T13:28:57+08:00"))
    assert diagnosis.begin_time == 1671082137.0


def test_missing_request_id_is_empty() -> None:
    assert parse_diagnosis(response(RequestId=MISSING)).request_id == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"VpnGatewayId": MISSING}, "VpnGatewayId is missing, not a non-empty string"),
        ({"VpnGatewayId": 42}, "VpnGatewayId is 42, not a non-empty string"),
        ({"VpnGatewayId": " "}, 'VpnGatewayId is " ", not a non-empty string'),
        ({"ResourceInstanceId": MISSING}, "ResourceInstanceId is missing, not a non-empty string"),
        ({"DiagnoseId": None}, "DiagnoseId is null, not a non-empty string"),
        ({"FinishedCount": "seven"}, 'FinishedCount is "seven", not a count'),
        ({"TotalCount": -1}, "TotalCount is -1, not a count"),
        ({"TotalCount": True}, "TotalCount is true, not a count"),
        ({"TotalCount": MISSING}, "TotalCount is missing, not a count"),
        ({"DiagnoseResult": "[]"}, "DiagnoseResult is a string, not a list"),
        ({"DiagnoseResult": {"DiagnoseResult": []}}, "DiagnoseResult is a object, not a list"),
        ({"DiagnoseResult": [42]}, "DiagnoseResult[0] is a number, not an object"),
        (
            {"DiagnoseResult": [{"DiagnoseResultLevel": "normal"}]},
            "DiagnoseResult[0] has no DiagnoseName",
        ),
        (
            {
                "DiagnoseResult": [
                    {"DiagnoseName": "VpnRouteQuota"},
                    {"DiagnoseName": "VpnRouteQuota"},
                ]
            },
            "DiagnoseResult lists VpnRouteQuota more than once",
        ),
    ],
)
def test_unusable_envelope_raises_response_shape_error(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ResponseShapeError) as raised:
        parse_diagnosis(response(**changes))
    assert str(raised.value) == message
    assert raised.value.request_id == "REQ-1"


def test_response_that_is_not_an_object_raises_response_shape_error() -> None:
    with pytest.raises(ResponseShapeError, match="response is a array, not a JSON object"):
        parse_diagnosis([])  # type: ignore[arg-type]


def test_response_shape_error_is_a_value_error() -> None:
    assert issubclass(ResponseShapeError, ValueError)


# --- properties --------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
DOCUMENTED_KEYS = [
    "quotaName",
    "quantity",
    "used",
    "targetIp",
    "srcIp",
    "rtt",
    "lossRate",
    "vcoDiffConf",
    "vcoLackConf",
    "vcoConf",
    "vcoRunningConf",
    "conflictRoutes",
    "routes",
]
NUMBERISH = (
    st.floats()
    | st.integers()
    | st.floats().map(str)
    | st.integers().map(str)
    | st.sampled_from(["-1", "-0", "-0.0", "1e999", "NaN", "Infinity", "", " 12 ", "0x10", "1_0"])
    | JSON_VALUES
)
DOCUMENTED_DESCRIPTIONS = st.dictionaries(st.sampled_from(DOCUMENTED_KEYS), NUMBERISH)
ITEMS = st.sampled_from([*ALL_ITEMS, "SomeFutureItem"])


def assert_only_sane_numbers(reading: Reading) -> None:
    for field in dataclasses.fields(reading):
        value = getattr(reading, field.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        assert math.isfinite(value), field.name
        assert value >= 0 and math.copysign(1.0, value) == 1.0, field.name
    if isinstance(reading, ProbeReading) and reading.loss_ratio is not None:
        assert 0.0 <= reading.loss_ratio <= 1.0


def encodings(value: object) -> list[object]:
    """The value as it may arrive: decoded, JSON, JSON in a JSON string, docs-sample style."""
    once = json.dumps(value)
    return [value, once, json.dumps(once), once.replace('"', '\\"')]


@settings(deadline=None)
@given(item=ITEMS, description=st.text())
def test_no_description_string_crashes_or_yields_a_bad_number(item: str, description: str) -> None:
    reading, _ = parse_description(item, description)
    assert_only_sane_numbers(reading)


@settings(deadline=None)
@given(item=ITEMS, value=JSON_VALUES)
def test_no_json_value_crashes_or_yields_a_bad_number(item: str, value: object) -> None:
    for description in encodings(value):
        reading, _ = parse_description(item, description)
        assert_only_sane_numbers(reading)


@settings(deadline=None)
@given(item=ITEMS, fields=DOCUMENTED_DESCRIPTIONS)
def test_documented_keys_with_any_values_never_yield_a_bad_number(
    item: str, fields: dict[str, object]
) -> None:
    for description in encodings(fields):
        reading, error = parse_description(item, description)
        assert_only_sane_numbers(reading)
        assert error is None or error.strip()


@settings(deadline=None)
@given(item=st.sampled_from(sorted(PROBE_ITEMS)), rtt=NUMBERISH, loss=NUMBERISH)
def test_probe_loss_ratio_is_always_within_0_and_1(item: str, rtt: object, loss: object) -> None:
    reading, _ = parse_description(item, {"targetIp": "10.0.0.1", "rtt": rtt, "lossRate": loss})
    assert isinstance(reading, ProbeReading)
    assert reading.loss_ratio is None or 0.0 <= reading.loss_ratio <= 1.0
    assert_only_sane_numbers(reading)


@settings(deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(list(response())),
        JSON_VALUES
        | st.lists(
            st.dictionaries(st.sampled_from(list(response()["DiagnoseResult"][0])), JSON_VALUES)
        ),
    )
)
def test_any_response_gives_a_diagnosis_or_a_response_shape_error(payload: dict[str, Any]) -> None:
    try:
        diagnosis = parse_diagnosis(response(**payload))
    except ResponseShapeError:
        return
    assert diagnosis.finished_count >= 0 and diagnosis.total_count >= 0
    for time in (diagnosis.begin_time, diagnosis.finish_time):
        assert time is None or (math.isfinite(time) and time > 0)
    for item in diagnosis.items:
        assert_only_sane_numbers(item.reading)
