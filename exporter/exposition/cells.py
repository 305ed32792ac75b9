"""One metric family's text, stored compressed in cells that are re-compressed alone.

Every owner of samples (a gateway, a target) has a slot. A family's text is its header
followed by its cells, each holding the fragments of `per_cell` consecutive slots. A cell
keeps its text only as a raw-deflate segment ended with a sync flush (so segments can be
joined into one gzip member, see `exporter.exposition.gzip_segments`), the length of each
slot's fragment and a hash of it. The exposition holds no plain copy of its text: a plain
scrape inflates the cached segments as it streams (at 10,000 gateways the text is some
120 MB, its segments some 4 MB).

An update costs one cell: when a slot's fragment differs from the one stored (by length
or hash), its cell's text is rebuilt and the cell marked dirty. `flush` re-compresses a
dirty cell; the exposition flushes each dirty cell a few updates later (consecutive
polls mostly change the same cells: they are compressed once for the lot), and a scrape
flushes what is left, a few cells at most.

Cells that changed recently are *hot*: they keep their plain text as well, so a cell
updated by every poll (timestamps, durations) is not inflated on each change, and are
compressed fast (`HOT_LEVEL`). When a cell has not changed for a while, `cool` drops its
text and compresses it again, smaller (`COLD_LEVEL`). Most of the text (item levels,
connection status) changes rarely and is served at the cold level.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterator

from exporter.exposition.gzip_segments import (
    CrcTree,
    Segment,
    compress_segment,
    crc32_combine,
)

EMPTY_SEGMENT = Segment(b"", 0, 0)
HOT_LEVEL = 1
"""zlib level of a cell that just changed: the fastest (an update re-compresses it)."""
COLD_LEVEL = 6
"""zlib level of a cell once it has cooled: some 15 % smaller than level 1 at three times
the CPU, paid once per cooling, not per update. Level 9 saves another ~2 % for twice
that again."""
PLAIN_PIECE = 256 * 1024
"""Largest piece of plain text inflated at once while a scrape streams."""


def deflate(text: bytes, level: int) -> bytes:
    """`text` as raw deflate ended with a sync flush (a segment that can stand anywhere)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def inflate(deflated: bytes) -> bytes:
    """The text of a segment made by `deflate`."""
    return zlib.decompressobj(-15).decompress(deflated)


def inflated_pieces(deflated: bytes, piece: int = PLAIN_PIECE) -> Iterator[bytes]:
    """The text of a segment, inflated in pieces of at most `piece` bytes."""
    decompressor = zlib.decompressobj(-15)
    data = deflated
    while data:
        text = decompressor.decompress(data, piece)
        if text:
            yield text
        data = decompressor.unconsumed_tail
        if not data and len(text) == piece:
            # A full piece may leave output pending once every input byte is read.
            while text := decompressor.decompress(b"", piece):
                yield text


class FamilyText:
    """The gzip segments of one family over all slots (see the module doc)."""

    __slots__ = (
        "_crc",
        "_deflated",
        "_dirty",
        "_hashes",
        "_header_segment",
        "_lengths",
        "_segment",
        "_texts",
        "filled",
        "header",
        "per_cell",
        "size",
    )

    def __init__(self, header: bytes, per_cell: int) -> None:
        self.header = header
        self.per_cell = per_cell
        self.filled = 0
        """Slots with a non-empty fragment: the family (and its header) is shown when > 0."""
        self.size = 0
        """Length of all cells' text, header excluded."""
        self._header_segment = compress_segment(header)
        self._lengths: list[array[int]] = []
        self._hashes: list[array[int]] = []
        """Per slot: `hash()` of its fragment (with the length, what tells a change)."""
        self._deflated: list[bytes] = []
        self._texts: list[bytes | None] = []
        """Per cell: its text while it is hot, else None."""
        self._dirty: set[int] = set()
        """Cells whose text changed since they were last compressed."""
        self._crc = CrcTree()
        self._segment: Segment | None = EMPTY_SEGMENT

    def set(self, slot: int, fragment: bytes) -> bool:
        """Store the fragment of `slot`; False when it was already that. The cell of a
        changed slot (`slot // per_cell`) is hot afterwards."""
        cell, position = divmod(slot, self.per_cell)
        while cell >= len(self._deflated):
            self._lengths.append(array("I", bytes(4 * self.per_cell)))
            self._hashes.append(array("q", bytes(8 * self.per_cell)))
            self._deflated.append(b"")
            self._texts.append(b"")
        lengths = self._lengths[cell]
        old = lengths[position]
        digest = hash(fragment)
        if old == len(fragment) and (not old or self._hashes[cell][position] == digest):
            return False
        text = self._texts[cell]
        if text is None:
            text = inflate(self._deflated[cell])
        start = sum(lengths[:position]) if position else 0
        with memoryview(text) as view:
            text = b"".join((view[:start], fragment, view[start + old :]))
        lengths[position] = len(fragment)
        self._hashes[cell][position] = digest
        self.filled += (len(fragment) > 0) - (old > 0)
        self.size += len(fragment) - old
        self._texts[cell] = text
        self._dirty.add(cell)
        self._segment = None
        return True

    def flush(self, cell: int, level: int = HOT_LEVEL) -> None:
        """Compress a dirty cell's text into its segment."""
        if cell not in self._dirty:
            return
        self._dirty.discard(cell)
        text = self._texts[cell] or b""
        self._deflated[cell] = deflate(text, level) if text else b""
        self._crc.set(cell, zlib.crc32(text), len(text))

    def cool(self, cell: int) -> None:
        """Drop a hot cell's text, keeping it compressed at `COLD_LEVEL` only."""
        text = self._texts[cell]
        if text is None:
            return
        if cell in self._dirty:
            self.flush(cell, COLD_LEVEL)
        elif text:
            self._deflated[cell] = deflate(text, COLD_LEVEL)
        self._texts[cell] = None
        self._segment = None

    def hot_bytes(self) -> int:
        """Plain text held by hot cells."""
        return sum(len(text) for text in self._texts if text)

    def chunks(self) -> Iterator[bytes]:
        """The family's text (inflated from the segment, in pieces)."""
        yield from inflated_pieces(self.segment().deflated)

    def segment(self) -> Segment:
        """The family's text as one gzip segment, joined again only after a change."""
        if self._segment is None:
            for cell in sorted(self._dirty):
                self.flush(cell)
            if not self.filled:
                self._segment = EMPTY_SEGMENT
            else:
                header = self._header_segment
                self._segment = Segment(
                    b"".join([header.deflated, *self._deflated]),
                    crc32_combine(header.crc, self._crc.crc, self._crc.size),
                    header.size + self._crc.size,
                )
        return self._segment
