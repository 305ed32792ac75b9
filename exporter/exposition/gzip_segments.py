"""One gzip member assembled from independently compressed, cached segments.

Each segment is raw deflate ended with a sync flush, so segments can be concatenated; the
member is closed with one final empty block and a trailer whose CRC-32 is combined from the
segments' CRCs. Clients see a single ordinary gzip member (`curl --compressed` reads only
the first member of a multi-member body), while the exporter only recompresses the
segments whose text changed.

Combining CRCs is on the scrape path and on every update, so it uses zlib's own
`crc32_combine` (through `ctypes`: Python's `zlib` module does not expose it) when the
system's zlib can be loaded, about 1 µs a call; the pure-Python version, some 60 times
slower, is the fallback and the reference in the tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import zlib
from collections.abc import Callable, Iterable
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


def py_crc32_combine(crc1: int, crc2: int, len2: int) -> int:
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


def _zlib_crc32_combine() -> Callable[[int, int, int], int] | None:
    """zlib's C `crc32_combine`, or None when no zlib shared library can be loaded."""
    for name in ("libz.so.1", ctypes.util.find_library("z")):
        if not name:
            continue
        try:
            function = ctypes.CDLL(name).crc32_combine
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_ulong
        function.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long)
        if function(0x12345678, 0x9ABCDEF0, 1000) == py_crc32_combine(0x12345678, 0x9ABCDEF0, 1000):
            return function
    return None


crc32_combine: Callable[[int, int, int], int] = _zlib_crc32_combine() or py_crc32_combine


class CrcTree:
    """CRC-32 and length of a sequence of parts, kept current as parts change one by one.

    A binary tree over the parts: changing one costs O(log n) combines and the total is
    read at the root, so neither an update nor a scrape combines every part again.
    """

    __slots__ = ("_capacity", "_crc", "_size")

    def __init__(self) -> None:
        self._capacity = 1
        self._crc = [0, 0]
        self._size = [0, 0]

    @property
    def crc(self) -> int:
        return self._crc[1]

    @property
    def size(self) -> int:
        return self._size[1]

    def set(self, index: int, crc: int, size: int) -> None:
        """Part `index` now has this CRC and length (parts never set are empty)."""
        if index >= self._capacity:
            self._grow(index + 1)
        node = self._capacity + index
        crcs, sizes = self._crc, self._size
        crcs[node], sizes[node] = crc, size
        while node > 1:
            node >>= 1
            self._join(node, crcs, sizes)

    def _join(self, node: int, crcs: list[int], sizes: list[int]) -> None:
        left, right = 2 * node, 2 * node + 1
        if sizes[right]:
            crcs[node] = crc32_combine(crcs[left], crcs[right], sizes[right])
        else:
            crcs[node] = crcs[left]
        sizes[node] = sizes[left] + sizes[right]

    def _grow(self, needed: int) -> None:
        old = self._capacity
        capacity = old
        while capacity < needed:
            capacity *= 2
        crcs, sizes = [0] * (2 * capacity), [0] * (2 * capacity)
        crcs[capacity : capacity + old] = self._crc[old : 2 * old]
        sizes[capacity : capacity + old] = self._size[old : 2 * old]
        for node in range(capacity - 1, 0, -1):
            self._join(node, crcs, sizes)
        self._capacity, self._crc, self._size = capacity, crcs, sizes


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
