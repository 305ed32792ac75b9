"""A capture document: redacted raw answers next to what the parser read from them.

One entry per gateway: the GetVpnGatewayDiagnoseResult answer exactly as received (after
redaction, see `exporter.capture.redact`) or the API's error, and for each item its raw
level, the reading, the parse error and the drift (`exporter.model.drift`). The items are
parsed from the *redacted* answer, so what the document says the parser read is what
anyone parsing the attached file gets, and no address leaks through a reading.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.model.parser import ResponseShapeError, parse_diagnosis

FORMAT = "aliyun-vpn-exporter capture 1"


@dataclass(frozen=True, slots=True)
class Captured:
    """One gateway's answer: the response object, or the error the API gave instead."""

    target: str
    region_id: str
    vpn_gateway_id: str
    response: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None


def read_items(response: Mapping[str, Any]) -> dict[str, Any]:
    """What the parser reads from a (redacted) response: its items, or why it could not."""
    try:
        diagnosis = parse_diagnosis(response)
    except ResponseShapeError as error:
        return {"response_error": str(error)}
    return {
        "items": [
            {
                "name": item.name,
                "level": item.level.value if item.level is not None else None,
                "reading": {
                    "type": type(item.reading).__name__,
                    **dataclasses.asdict(item.reading),
                },
                "parse_error": item.parse_error,
                "drift": [str(drift) for drift in item.drift],
            }
            for item in diagnosis.items
        ]
    }


def document(captured: Sequence[Captured], *, version: str, captured_at: str) -> dict[str, Any]:
    """The capture file's content (already redacted answers in, JSON-ready dict out)."""
    gateways = []
    for entry in captured:
        gateway: dict[str, Any] = {
            "target": entry.target,
            "region_id": entry.region_id,
            "vpn_gateway_id": entry.vpn_gateway_id,
        }
        if entry.response is not None:
            gateway["response"] = entry.response
            gateway["parsed"] = read_items(entry.response)
        if entry.error is not None:
            gateway["error"] = entry.error
        gateways.append(gateway)
    return {
        "format": FORMAT,
        "exporter_version": version,
        "captured_at": captured_at,
        "gateways": gateways,
    }


def dumps(content: Mapping[str, Any]) -> str:
    """The capture as text: JSON, indented, keys in their order, ending with a newline."""
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"
