"""Captures attached by users (`aliyun-vpn-exporter capture`) are fixtures: every file
under tests/fixtures/captures/ must parse, and raise no shape drift that the README's
"Report an API shape" table does not document."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.capture.report import FORMAT
from exporter.model.drift import DriftKind
from exporter.model.parser import parse_diagnosis

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = sorted((ROOT / "tests" / "fixtures" / "captures").glob("*.json"))
_ROW = re.compile(r"^\| `(?P<item>[^`]+)` \| `(?P<kind>[^`]+)` \|", re.MULTILINE)


def documented_drift() -> set[tuple[str, str]]:
    """(item or `*`, kind) rows of the README's table under "Report an API shape"."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Report an API shape", 1)[1].split("\n## ", 1)[0]
    return {(m["item"], m["kind"]) for m in _ROW.finditer(section)}


def test_the_readme_documents_only_known_drift_kinds() -> None:
    documented = documented_drift()
    assert documented, "the README's table of expected drift is missing"
    assert {kind for _, kind in documented} <= {kind.value for kind in DriftKind}


def test_there_is_a_capture_to_check() -> None:
    assert CAPTURES, "tests/fixtures/captures/ holds no capture"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_a_capture_parses_with_no_undocumented_drift(path: Path) -> None:
    capture: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert capture["format"] == FORMAT
    documented = documented_drift()
    undocumented = []
    answered = [gateway for gateway in capture["gateways"] if "response" in gateway]
    assert answered, f"{path.name} has no answer to parse"
    for gateway in answered:
        diagnosis = parse_diagnosis(gateway["response"])
        for item in diagnosis.items:
            for drift in item.drift:
                kind = drift.kind.value
                if (item.name, kind) not in documented and ("*", kind) not in documented:
                    undocumented.append(f"{gateway['vpn_gateway_id']} {item.name}: {drift}")
    assert not undocumented, (
        "teach the parser these shapes or document them in the README: " + "; ".join(undocumented)
    )
