"""The benchmark harness runs end to end at toy sizes (`python -m benchmarks --quick`).

These tests check that every benchmark starts its processes, measures, and writes its rows;
they never judge a figure: timings belong to `python -m benchmarks` on a quiet machine.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.budget_sim import generated_ids, generator_regions
from benchmarks.report import Row, Section, all_passed, markdown_table
from benchmarks.scraping import gunzip_single_member, p99, series

REPO = Path(__file__).resolve().parent.parent
TITLES = (
    "2. scrape at scale",
    "3. update cost",
    "4. client cost",
    "5. budget adherence",
    "6. footprint and first cycle",
    "7. status page",
)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str]:
    results = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", f"--results={results}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return (
        done.returncode,
        done.stdout + done.stderr,
        results.read_text() if results.exists() else "",
    )


def test_quick_run_writes_a_results_table_with_every_benchmark(
    quick_results: tuple[int, str, str],
) -> None:
    code, output, results = quick_results
    assert code in (0, 1), output  # 1: some toy-size figure missed its target
    assert "| workload | ours | baseline | ratio | target | pass/fail |" in results
    for title in TITLES:
        assert f"**{title}**" in results, output


def test_quick_run_has_rows_and_no_benchmark_failed_to_run(
    quick_results: tuple[int, str, str],
) -> None:
    _, output, results = quick_results
    assert "could not run" not in results, output
    assert "Traceback" not in output
    for title in TITLES:
        section = results.split(f"**{title}**", 1)[1].split("| **", 1)[0]
        assert section.count("\n|") >= 2, f"{title} has no rows"


def test_quick_run_records_date_and_machine(quick_results: tuple[int, str, str]) -> None:
    _, _, results = quick_results
    assert "- date: " in results
    assert "- machine: " in results


def test_p99_of_twenty_samples_is_the_slowest() -> None:
    assert p99([float(n) for n in range(1, 21)]) == 20.0
    assert p99([float(n) for n in range(1, 201)]) == 198.0


def test_a_gzip_body_of_one_member_is_read_whole() -> None:
    assert gunzip_single_member(gzip.compress(b"abc")) == b"abc"
    with pytest.raises(ValueError, match="one complete gzip member"):
        gunzip_single_member(gzip.compress(b"abc") + gzip.compress(b"def"))


def test_series_compare_across_label_order_and_number_format() -> None:
    ours = b'# HELP m x\nm{b="2",a="1"} 1\nother{a="1"} 3\n'
    theirs = b'm{a="1",b="2"} 1.0\n'
    assert series(ours, {"m"}) == series(theirs, {"m"}) == {("m", "a=1", "b=2"): 1.0}


def test_generated_regions_deal_fifty_gateways_per_entry() -> None:
    listed = generator_regions({"big": 150, "small": 50})
    by_region = generated_ids(listed, 200)
    assert {region: len(ids) for region, ids in by_region.items()} == {"big": 150, "small": 50}
    with pytest.raises(ValueError, match="multiple of 50"):
        generator_regions({"odd": 70})


def test_a_failed_row_fails_the_run_and_context_rows_do_not() -> None:
    section = Section("x", rows=[Row("context", "1 ms"), Row("target", "2 ms", passed=True)])
    assert all_passed([section])
    section.add(Row("missed", "3 ms", target="≤ 1 ms", passed=False))
    assert not all_passed([section])
    assert "| missed | 3 ms |  |  | ≤ 1 ms | FAIL |" in markdown_table([section])
