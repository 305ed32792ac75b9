"""One gzip member assembled from independently compressed, cached segments.

Each segment is raw deflate ended with a sync flush, so segments can be concatenated; the
member is closed with one final empty block and a trailer whose CRC-32 is combined from the
segments' CRCs. Clients see a single ordinary gzip member (`curl --compressed` reads only
the first member of a multi-member body), while the exporter only recompresses the
segments whose text changed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""Magic, deflate, no flags, no mtime, no extra flags, unknown OS."""
FINAL_EMPTY_BLOCK = b"\x03\x00"
"""A final, empty, fixed-Huffman deflate block."""
_POLY = 0xEDB88320


@dataclass(frozen=True, slots=True)
class Segment:
    """Raw deflate data of some text, with that text's CRC-32 and length."""

    deflated: bytes
    crc: int
    size: int


def compress_segment(data: bytes, level: int = 1) -> Segment:
    """Deflate `data` into a segment that can stand anywhere in a member."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Segment(deflated, zlib.crc32(data), len(data))


def _multmodp(a: int, b: int) -> int:
    """Multiply two polynomials modulo the CRC-32 polynomial (zlib's `multmodp`)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    table = []
    p = 1 << 30
    table.append(p)
    for _ in range(1, 32):
        p = _multmodp(p, p)
        table.append(p)
    return table


_X2N = _x2n_table()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of `A + B` from `crc(A)`, `crc(B)` and `len(B)` (zlib's `crc32_combine`)."""
    p = 1 << 31
    k = 3
    n = len2
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


def gzip_member(segments: Iterable[Segment]) -> list[bytes]:
    """The chunks of one gzip member made of `segments`, to be sent in order."""
    chunks = [GZIP_HEADER]
    crc = 0
    size = 0
    for segment in segments:
        if not segment.size:
            continue
        chunks.append(segment.deflated)
        crc = crc32_combine(crc, segment.crc, segment.size)
        size += segment.size
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    chunks.append(FINAL_EMPTY_BLOCK + trailer)
    return chunks
