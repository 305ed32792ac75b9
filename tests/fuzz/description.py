"""atheris target: `parse_description` on any bytes, as text and as JSON, for every item.

It must never raise, and every number it reads must be finite and non-negative (a loss
ratio within 0..1): the exporter turns unreadable descriptions into parse errors, never
into a crash or a wrong number.

    python -m tests.fuzz.description -runs=200000 [-max_len=512]
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import atheris

with atheris.instrument_imports():
    from exporter.model.diagnosis import (
        CONSISTENCY_ITEM,
        PROBE_ITEMS,
        QUOTA_ITEMS,
        ROUTE_CONFLICT_ITEM,
        ProbeReading,
        Reading,
    )
    from exporter.model.parser import parse_description

ITEMS = [*sorted(QUOTA_ITEMS | PROBE_ITEMS | {CONSISTENCY_ITEM, ROUTE_CONFLICT_ITEM}), "Future"]


def _sane(reading: Reading) -> None:
    for field in dataclasses.fields(reading):
        value = getattr(reading, field.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value) or value < 0 or math.copysign(1.0, value) != 1.0:
            raise AssertionError(f"{type(reading).__name__}.{field.name} = {value!r}")
    loss = reading.loss_ratio if isinstance(reading, ProbeReading) else None
    if loss is not None and not 0.0 <= loss <= 1.0:
        raise AssertionError(f"loss_ratio = {loss!r}")


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    item = ITEMS[provider.ConsumeIntInRange(0, len(ITEMS) - 1)]
    text = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
    reading, _ = parse_description(item, text)
    _sane(reading)
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return
    reading, _ = parse_description(item, decoded)  # the field given as an object
    _sane(reading)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
