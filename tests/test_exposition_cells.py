"""Cells of a family's text and their gzip segments stay exactly the text, change by change."""

from __future__ import annotations

import gzip
import random
import zlib

from exporter.exposition.cells import FamilyText, deflate, inflated_pieces
from exporter.exposition.gzip_segments import CrcTree, crc32_combine, gzip_member, py_crc32_combine
from exporter.exposition.render import FAMILIES, GENERATION_CHANGES, Exposition

HEADER = b"# HELP m x\n# TYPE m gauge\n"


def fragment(owner: int, value: int) -> bytes:
    return f'm{{owner="{owner}"}} {value}\n'.encode()


def text_of(family: FamilyText) -> bytes:
    return b"".join(family.chunks())


def test_crc32_combine_matches_zlib_and_the_python_reference() -> None:
    rng = random.Random(7)
    for _ in range(50):
        a = rng.randbytes(rng.randrange(0, 3000))
        b = rng.randbytes(rng.randrange(0, 3000))
        expected = zlib.crc32(a + b)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == expected
        assert py_crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == expected


def test_crc_tree_follows_parts_changing_in_any_order() -> None:
    rng = random.Random(3)
    parts = [b""] * 37
    tree = CrcTree()
    for _ in range(300):
        index = rng.randrange(len(parts))
        parts[index] = rng.randbytes(rng.randrange(0, 50))
        tree.set(index, zlib.crc32(parts[index]), len(parts[index]))
        whole = b"".join(parts)
        assert (tree.crc, tree.size) == (zlib.crc32(whole), len(whole))


def test_family_text_is_the_header_and_the_fragments_in_slot_order() -> None:
    family = FamilyText(HEADER, per_cell=4)
    for slot in (5, 0, 9):
        assert family.set(slot, fragment(slot, 1))
    assert text_of(family) == HEADER + fragment(0, 1) + fragment(5, 1) + fragment(9, 1)


def test_an_unchanged_fragment_keeps_the_cached_segment() -> None:
    family = FamilyText(HEADER, per_cell=4)
    family.set(1, fragment(1, 1))
    before = family.segment()
    assert not family.set(1, fragment(1, 1))
    assert family.segment() is before


def test_an_empty_family_shows_nothing_not_even_its_header() -> None:
    family = FamilyText(HEADER, per_cell=4)
    family.set(2, fragment(2, 1))
    family.set(2, b"")
    assert text_of(family) == b""
    assert family.segment().size == 0


def test_gzip_segment_is_always_the_text_after_random_changes() -> None:
    rng = random.Random(11)
    family = FamilyText(HEADER, per_cell=8)
    for _ in range(400):
        slot = rng.randrange(60)
        family.set(slot, fragment(slot, rng.randrange(1000)) if rng.random() < 0.9 else b"")
        if rng.random() < 0.1:
            segment = family.segment()
            member = b"".join(gzip_member([segment]))
            assert gzip.decompress(member) == text_of(family)
            assert segment.size == len(text_of(family))


def test_a_removed_owners_slot_is_reused_and_nothing_of_it_remains() -> None:
    exposition = Exposition()
    fragments = (b"",) * (len(FAMILIES) - 1)
    assert FAMILIES[0].name == "aliyun_vpn_diagnose_item_status"
    first = (b'aliyun_vpn_diagnose_item_status{a="1"} 1\n', *fragments)
    second = (b'aliyun_vpn_diagnose_item_status{a="2"} 1\n', *fragments)
    exposition.put("one", first)
    exposition.put("two", second)
    exposition.remove("one")
    exposition.put("three", first)
    text = b"".join(exposition.chunks())
    assert text.count(b"aliyun_vpn_diagnose_item_status{") == 2
    assert exposition.size == len(text)
    assert gzip.decompress(b"".join(gzip_member(exposition.segments()))) == text


def test_cells_cool_into_smaller_segments_with_the_same_text() -> None:
    family = FamilyText(HEADER, per_cell=64)
    for slot in range(64):
        family.set(slot, fragment(slot, slot * 7))
    text, hot = text_of(family), family.segment()
    assert family.hot_bytes() == len(text) - len(HEADER)
    family.cool(0)
    cold = family.segment()
    assert family.hot_bytes() == 0
    assert text_of(family) == text
    assert len(cold.deflated) < len(hot.deflated)
    assert (cold.crc, cold.size) == (hot.crc, hot.size)
    assert family.set(3, fragment(3, 1))  # a cooled cell is inflated to change it
    assert text_of(family) == text.replace(fragment(3, 21), fragment(3, 1))


def test_the_exposition_cools_cells_that_stopped_changing_and_keeps_busy_ones_hot() -> None:
    exposition = Exposition()
    names = [family.name for family in FAMILIES]
    busy = names.index("aliyun_vpn_poll_duration_seconds")
    still = names.index("aliyun_vpn_gateway_info")

    def fragments(owner: int, value: int) -> tuple[bytes, ...]:
        out = [b""] * len(FAMILIES)
        out[busy] = f'{names[busy]}{{owner="{owner}"}} {value}\n'.encode()
        out[still] = f'{names[still]}{{owner="{owner}"}} 1\n'.encode()
        return tuple(out)

    for value in range(3 * GENERATION_CHANGES):
        exposition.put(value % 4, fragments(value % 4, value))
    text = b"".join(exposition.chunks())
    hot = exposition.hot_bytes
    assert 0 < hot < len(text)
    assert hot == sum(
        len(line) for line in text.splitlines(True) if line.startswith(b"aliyun_vpn_poll_d")
    )
    exposition.cool_all()
    assert exposition.hot_bytes == 0
    assert b"".join(exposition.chunks()) == text


def test_plain_text_streams_in_bounded_pieces() -> None:
    text = b"".join(fragment(n, n) for n in range(20_000))
    pieces = list(inflated_pieces(deflate(text, 6), piece=4096))
    assert b"".join(pieces) == text
    assert max(map(len, pieces)) == 4096
