"""`python -m benchmarks`: every benchmark of issues 7 and 13, one table, RESULTS.md.

Runs, in order: scrape at scale and update cost (2, 3), client cost (4), budget adherence
(5), footprint and first cycle (6). Each benchmark's servers and clients run in processes
of their own; this process only orchestrates and scrapes. A benchmark that cannot run is
reported as such in the table, and the others still run. The exit status is 0 when every
target passed.

The fleet has `--gateways` gateways (1,000 by default: a development size, some 10
minutes here; `--gateways 10000` gives the figures the README quotes). `--quick` runs
everything at toy sizes in a few minutes: it checks the harness, not the product, and
writes RESULTS.md only when `--results` says where.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import bench_budget, bench_client, bench_footprint, bench_scrape, bench_status
from benchmarks.report import Section, all_passed, plain_table, results_markdown

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NAMES = ("scrape", "client", "budget", "footprint", "status")
DEFAULT_GATEWAYS = 1_000


def full_plan(gateways: int, rounds: int) -> dict[str, Callable[[], list[Section]]]:
    scrape = bench_scrape.ScrapeSettings(
        gateways=gateways, update_count=min(2_000, gateways), burst=max(10, gateways // 20)
    )
    footprint = bench_footprint.FootprintSettings(gateways=gateways, rounds=rounds)
    return {
        "scrape": lambda: list(bench_scrape.run(scrape)),
        "client": lambda: [bench_client.run(bench_client.ClientSettings())],
        "budget": lambda: [bench_budget.run(bench_budget.BudgetSettings())],
        "footprint": lambda: [bench_footprint.run(footprint)],
        "status": lambda: [bench_status.run(bench_status.StatusSettings(gateways=gateways))],
    }


def quick_plan() -> dict[str, Callable[[], list[Section]]]:
    scrape = bench_scrape.ScrapeSettings(
        gateways=200,
        regions=2,
        scrapes=2,
        gzip_scrapes=2,
        baseline_scrapes=1,
        burst=10,
        update_rounds=1,
        update_count=50,
    )
    client = bench_client.ClientSettings(
        gateways=100,
        concurrency=(1, 4),
        calls=20,
        warmup=5,
        rounds=1,
        throughput_calls={1: 10, 4: 20},
        throughput_rounds=1,
    )
    budget = bench_budget.BudgetSettings(
        big_gateways=200,
        small_regions=2,
        small_gateways=50,
        time_scale=60.0,
        warmup=6.0,
        window=4.0,
    )
    footprint = bench_footprint.FootprintSettings(
        gateways=200, regions=2, rounds=1, ready_runs=1, import_runs=1
    )
    return {
        "scrape": lambda: list(bench_scrape.run(scrape)),
        "client": lambda: [bench_client.run(client)],
        "budget": lambda: [bench_budget.run(budget)],
        "footprint": lambda: [bench_footprint.run(footprint)],
        "status": lambda: [bench_status.run(bench_status.StatusSettings(gateways=200, runs=2))],
    }


TITLES = {
    "scrape": ("2. scrape at scale", "3. update cost"),
    "client": ("4. client cost",),
    "budget": ("5. budget adherence",),
    "footprint": ("6. footprint and first cycle",),
    "status": ("7. status page",),
}


def run_all(names: Sequence[str], quick: bool, gateways: int, rounds: int) -> list[Section]:
    plan = quick_plan() if quick else full_plan(gateways, rounds)
    sections: list[Section] = []
    for name in names:
        started = time.perf_counter()
        print(f"running {name}…", file=sys.stderr, flush=True)
        try:
            sections += plan[name]()
        except Exception as error:
            traceback.print_exc()
            message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            sections += [Section(title, error=message) for title in TITLES[name]]
        print(f"  {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}"
    )
    parser.add_argument("--quick", action="store_true", help="toy sizes: a harness check")
    parser.add_argument(
        "--gateways",
        type=int,
        default=DEFAULT_GATEWAYS,
        help=f"fleet size of the scrape and footprint benchmarks (default {DEFAULT_GATEWAYS:,})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"where to write the results (default {RESULTS.name}, not written with --quick)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of ours and the baseline in the footprint benchmark (default 3)",
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started_at = datetime.datetime.now(datetime.UTC).astimezone()
    started = time.perf_counter()
    sections = run_all(names, args.quick, args.gateways, args.rounds)
    took = time.perf_counter() - started
    print(plain_table(sections))
    results = args.results or (None if args.quick else RESULTS)
    if results is not None:
        results.write_text(results_markdown(sections, started=started_at, took=took))
        print(f"\nwritten to {results}")
    return 0 if all_passed(sections) else 1
