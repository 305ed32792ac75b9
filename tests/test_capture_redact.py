"""Redaction of captured answers: placeholders keep the kind and stay stable; shapes,
numbers and the JSON of a description survive."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.capture.redact import Redactor


def test_each_value_gets_one_stable_placeholder_of_its_kind() -> None:
    redactor = Redactor()
    text = redactor.text(
        "vpn-uf6fzwp0ck3frwtbk**** via 192.168.1.1 and 2001:db8::1; vco-abc123 then "
        "vpn-uf6fzwp0ck3frwtbk**** again from 192.168.1.1 or 10.0.0.1 at 2022-12-15T05:28:57Z"
    )
    assert text == (
        "vpn-redacted1 via <ipv4-1> and <ipv6-1>; vco-redacted1 then "
        "vpn-redacted1 again from <ipv4-1> or <ipv4-2> at 2022-12-15T05:28:57Z"
    )


def test_a_doubly_encoded_description_stays_json_with_numbers_and_keys_kept() -> None:
    inner = {"targetIp": "203.0.113.9", "srcIp": "fe80::1", "rtt": -1.0, "lossRate": 100.0}
    description = json.dumps(json.dumps(inner))
    redacted = Redactor().value({"DiagnoseResultDescription": description})
    decoded = json.loads(json.loads(redacted["DiagnoseResultDescription"]))
    assert decoded == {"targetIp": "<ipv4-1>", "srcIp": "<ipv6-1>", "rtt": -1.0, "lossRate": 100.0}


def test_secrets_and_account_ids_go_wherever_they_appear() -> None:
    redactor = Redactor(secrets=["LTAI5tSecretKeyId", "s3cr3t-value"])
    value = redactor.value(
        {"Message": "key LTAI5tSecretKeyId of acs:ram::1234567890123456:root", "n": 12345}
    )
    assert value == {"Message": "key <secret> of acs:ram::0000000000000001:root", "n": 12345}


def test_region_ids_and_words_with_a_prefix_are_kept() -> None:
    kept = "cn-hangzhou ap-southeast-1 aliyun-vpn-exporter vpn gateway tr-"
    assert Redactor().text(kept) == kept


@settings(max_examples=300)
@given(
    parts=st.lists(
        st.one_of(
            st.ip_addresses().map(str),
            st.from_regex(r"(vpn|vco|vpndgn|tr|cgw)-[a-z0-9]{6,20}", fullmatch=True),
            st.text(alphabet=' {}[]":,\\', max_size=5),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_address_or_id_survives_in_any_text(parts: list[str]) -> None:
    text = Redactor().text(" ".join(parts))
    for part in parts:
        if any(c.isalnum() for c in part):  # an address or an ID
            assert part not in text
