"""One schemathesis run as both listeners' fuzz tests use it: every check, a fixed seed,
no example database, so a failure reproduces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_schemathesis(
    schema: str,
    *,
    auth: tuple[str, str],
    max_examples: int,
    workdir: Path,
    extra: tuple[str, ...] = (),
) -> None:
    """Run schemathesis against `schema` (a URL, or a file followed by `--url` in `extra`)
    and fail with its report unless every check passed."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        schema,
        *extra,
        "--auth",
        f"{auth[0]}:{auth[1]}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        "20261122",
        "--workers",
        "1",
        "--no-color",
        "--suppress-health-check",
        "too_slow",
        "--generation-database",
        "none",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
