"""The results table: one row per measured target, printed and written to RESULTS.md.

A row compares our figure with a baseline figure when there is one (the ratio is always
ours ÷ baseline, so "≤ 0.05" means "at least 20x faster"), or states a limit when the
target is absolute (≤ 1 ms, ≤ 250 MB…). Rows without a target are context: they are
printed but never fail the run.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    workload: str
    ours: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    passed: bool | None = None
    """None: a context row without a target."""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return ""
        return "pass" if self.passed else "FAIL"


@dataclass(slots=True)
class Section:
    """The rows of one benchmark, with notes on how they were measured."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    """Set when the benchmark could not run; the table says so instead of guessing."""

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def note(self, text: str) -> None:
        self.notes.append(text)


HEADER = ("workload", "ours", "baseline", "ratio", "target", "pass/fail")


def ms(seconds: float) -> str:
    """A duration in milliseconds with sensible precision."""
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def ratio(ours: float, baseline: float) -> str:
    if baseline <= 0:
        return "n/a"
    value = ours / baseline
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}"


def markdown_table(sections: Sequence[Section]) -> str:
    """Every section's rows in one Markdown table, a bold line per benchmark."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for section in sections:
        lines.append(f"| **{section.title}** | | | | | |")
        if section.error:
            lines.append(f"| could not run: {section.error} | | | | | FAIL |")
        for row in section.rows:
            cells = (row.workload, row.ours, row.baseline, row.ratio, row.target, row.verdict)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def all_passed(sections: Sequence[Section]) -> bool:
    return all(
        section.error is None and all(row.passed is not False for row in section.rows)
        for section in sections
    )


def machine() -> str:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average at the end {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs{memory}; "
        f"{platform.platform()}; Python {platform.python_version()}{load}"
    )


def results_markdown(
    sections: Sequence[Section], *, started: datetime.datetime, took: float
) -> str:
    """The whole RESULTS.md text."""
    verdict = "every target passed" if all_passed(sections) else "some targets FAILED"
    parts = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` (never by hand); see `benchmarks/README.md` for what",
        "each workload does and why it is measured that way.",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- machine: {machine()}",
        f"- command: `{' '.join([Path(sys.executable).name, '-m', 'benchmarks', *sys.argv[1:]])}`",
        f"- duration: {took:.0f} s; {verdict}",
        "",
        "Ratios are ours ÷ baseline: below 1 we are faster or smaller.",
        "",
        markdown_table(sections),
        "",
    ]
    for section in sections:
        if section.notes:
            parts += [f"## {section.title}", ""]
            parts += [
                note if note.startswith(("```", "    ")) else f"- {note}" for note in section.notes
            ]
            parts.append("")
    return "\n".join(parts)


def plain_table(sections: Sequence[Section]) -> str:
    """The table for a terminal: aligned columns, a title line per benchmark."""
    rows: list[tuple[str, ...]] = [HEADER]
    for section in sections:
        rows.append((f"[{section.title}]", "", "", "", "", ""))
        if section.error:
            rows.append((f"  could not run: {section.error}", "", "", "", "", "FAIL"))
        for row in section.rows:
            rows.append(
                ("  " + row.workload, row.ours, row.baseline, row.ratio, row.target, row.verdict)
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
