"""One metric family's text, stored as cells that are re-joined and re-compressed alone.

Every owner of samples (a gateway, a target) has a slot. A family's text is its header
followed by its cells, each holding the fragments of `per_cell` consecutive slots. A cell
keeps its joined text and the length of each slot's fragment, not the fragments
themselves, so the exposition holds a single copy of its text (at 10,000 gateways it is
some 80 MB). When a fragment changes, its cell is re-joined and re-compressed into a gzip
segment at once: an update costs a few cells of about 16 KB, and a scrape, even right
after a burst of updates, sends cached bytes without joining or compressing anything.

The gzip side is one segment per cell; the family's segment joins them when one changed
since the last scrape, and its CRC-32 is read from a `CrcTree` kept current cell by cell.
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
_LEVEL = 1
"""zlib level of cell segments: the fastest; level 6 would save a tenth of the bytes for
three times the CPU on every update."""


class FamilyText:
    """The text and gzip segments of one family over all slots."""

    __slots__ = (
        "_crc",
        "_deflated",
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
        self._texts: list[bytes] = []
        self._lengths: list[array[int]] = []
        self._deflated: list[bytes] = []
        self._crc = CrcTree()
        self._segment: Segment | None = EMPTY_SEGMENT

    def set(self, slot: int, fragment: bytes) -> bool:
        """Store the fragment of `slot`; False when it was already that."""
        cell, position = divmod(slot, self.per_cell)
        while cell >= len(self._texts):
            self._texts.append(b"")
            self._lengths.append(array("I", bytes(4 * self.per_cell)))
            self._deflated.append(b"")
        lengths = self._lengths[cell]
        old = lengths[position]
        text = self._texts[cell]
        start = sum(lengths[:position]) if position else 0
        if old == len(fragment) and (not old or text.startswith(fragment, start)):
            return False
        with memoryview(text) as view:
            text = b"".join((view[:start], fragment, view[start + old :]))
        lengths[position] = len(fragment)
        self.filled += (len(fragment) > 0) - (old > 0)
        self.size += len(fragment) - old
        self._texts[cell] = text
        if text:
            compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
            self._deflated[cell] = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
            self._crc.set(cell, zlib.crc32(text), len(text))
        else:
            self._deflated[cell] = b""
            self._crc.set(cell, 0, 0)
        self._segment = None
        return True

    def chunks(self) -> Iterator[bytes]:
        """The family's text: the header, then each non-empty cell (cached bytes)."""
        if not self.filled:
            return
        yield self.header
        for text in self._texts:
            if text:
                yield text

    def segment(self) -> Segment:
        """The family's text as one gzip segment, joined again only after a change."""
        if self._segment is None:
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
