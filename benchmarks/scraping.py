"""Scraping `/metrics` the way Prometheus does, timed from request to last byte.

One keep-alive connection per server (Prometheus keeps its connections), the whole body
read (never decompressed while timed), wall time per scrape. The request headers are
Prometheus 2.42's own for each format.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import re
import statistics
import time
import zlib
from dataclasses import dataclass

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
FORMATS: dict[str, dict[str, str]] = {
    "plain": {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "identity"},
    "openmetrics": {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "identity"},
    "gzip": {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"},
}
"""plain: text format 0.0.4; openmetrics and gzip: what Prometheus sends (gzip: OpenMetrics
compressed, the way every Prometheus scrape asks for it)."""


class ScrapeError(RuntimeError):
    """A scrape that did not answer 200."""


@dataclass(frozen=True, slots=True)
class Scrape:
    seconds: float
    body: bytes
    headers: dict[str, str]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class Scraper:
    """Scrapes one server over one keep-alive connection (reopened if the server closes)."""

    def __init__(self, port: int, path: str = "/metrics", timeout: float = 120.0) -> None:
        self.path = path
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def scrape(self, fmt: str) -> Scrape:
        try:
            return self._scrape(fmt)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection; Prometheus reconnects too.
            self.connection.close()
            return self._scrape(fmt)

    def _scrape(self, fmt: str) -> Scrape:
        headers = FORMATS[fmt]
        started = time.perf_counter()
        self.connection.request("GET", self.path, headers=headers)
        response = self.connection.getresponse()
        body = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200:
            raise ScrapeError(f"{self.path}: HTTP {response.status}")
        if response.will_close:
            self.connection.close()
        return Scrape(seconds, body, {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        self.connection.close()


def gunzip_single_member(body: bytes) -> bytes:
    """The content of a gzip body that must be exactly one member (what `curl
    --compressed` and people's tools read whole)."""
    decompressor = zlib.decompressobj(wbits=31)
    data = decompressor.decompress(body) + decompressor.flush()
    if not decompressor.eof or decompressor.unused_data:
        raise ValueError("the gzip body is not exactly one complete gzip member")
    return data


def p99(samples: list[float]) -> float:
    """Nearest-rank 99th percentile (with 20 samples: the slowest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Timing:
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        return p99(self.samples)


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series(text: bytes, families: set[str]) -> dict[tuple[str, ...], float]:
    """Every sample of the given families: (name, sorted label pairs...) → value.

    Label order and number formatting differ between libraries; the series do not.
    """
    samples: dict[tuple[str, ...], float] = {}
    for line in text.decode().splitlines():
        if not line or line[0] == "#":
            continue
        key, _, value = line.rpartition(" ")
        name, _, labels = key.partition("{")
        if name in families:
            pairs = sorted(f"{k}={v}" for k, v in _LABEL.findall(labels))
            samples[(name, *pairs)] = float(value)
    return samples
