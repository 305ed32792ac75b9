"""What `/metrics` serves: the latest-known state and its text.

- `records`: immutable per-gateway records and how poll outcomes change them;
- `fleet`: the records of every gateway, swapped atomically, re-rendered on change;
- `render`: metric families and the per-gateway text fragments;
- `cells`, `gzip_segments`: cached text and gzip segments a scrape concatenates.

May import: `exporter.model`, `exporter.telemetry`. Never the network or the scheduler.
"""
