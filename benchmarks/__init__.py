"""Benchmarks of issue 7: scrape at scale, update cost, client cost, budget adherence and
footprint, each measured side by side with its baseline on the machine it runs on.

`python -m benchmarks` runs them all (see `benchmarks/README.md`); nothing in the
exporter imports this package.
"""
