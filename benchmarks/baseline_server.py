"""Child: the pinned baseline. The same series as labelled `Gauge`s in a
`prometheus_client` `CollectorRegistry`, rendered per scrape by
`prometheus_client.start_http_server`.

`python -m benchmarks.baseline_server --exposition FILE`

The series come from the exporter's own plain-text exposition (FILE): one `Gauge` per
per-gateway family (`exporter.exposition.render.FAMILIES`; the exporter's few self-metrics are
rendered by this same library in both servers and are left out), with the family's HELP
text and label names in the exporter's order, one child per series set to the same
value. The parent checks afterwards that both servers expose the same set of series with
the same values.
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from benchmarks.procs import announce, own_memory
from exporter.exposition.render import FAMILIES

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def registry_from(text: str) -> tuple[CollectorRegistry, int]:
    """A registry holding every sample of an exposition text as a labelled gauge."""
    registry = CollectorRegistry(auto_describe=False)
    helps: dict[str, str] = {}
    gauges: dict[str, Gauge] = {}
    samples = 0
    wanted = {family.name for family in FAMILIES}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            helps[name] = help_text
            continue
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, rest = series.partition("{")
        if name not in wanted:
            continue
        labels = _LABEL.findall(rest)
        gauge = gauges.get(name)
        if gauge is None:
            gauge = gauges[name] = Gauge(
                name, helps.get(name, name), [label for label, _ in labels], registry=registry
            )
        gauge.labels(*(_unescape(v) for _, v in labels)).set(float(value))
        samples += 1
    return registry, samples


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    registry, samples = registry_from(Path(args.exposition).read_text())
    built = time.perf_counter() - started
    server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    announce(port=server.server_port, samples=samples, build_seconds=built, **own_memory())
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exposition", required=True)
    main(parser.parse_args())
