"""The start-up warning about secret files other users can read (issue 12, defect 12), from
the command line as users run it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.process_harness import BOUND, config_document, exporter_process, simulator_thread

WARNING = "a file holding secrets is readable by other users"


def started_log(process_log: object) -> str:
    deadline = time.monotonic() + BOUND
    while "exporter started" not in (text := process_log()):  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return str(text)


def test_defect_12_a_config_and_a_tokens_file_readable_by_others_are_named_at_start(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ci:" + "t" * 40 + "\n")
    tokens.chmod(0o644)
    with (
        simulator_thread() as (_, url),
        exporter_process(
            tmp_path,
            config_document(url, admin=True),
            admin=True,
            admin_web={"bearer_tokens_file": str(tokens)},
        ) as process,
    ):
        log = started_log(process.log)
    warned = [line for line in log.splitlines() if WARNING in line]
    assert any(f"path={tokens}" in line and "mode=0644" in line for line in warned), warned
    assert any(f"path={process.config}" in line for line in warned), warned


def test_defect_12_files_only_the_owner_reads_raise_no_warning(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    with simulator_thread() as (_, url):
        config.touch(mode=0o600)
        config.chmod(0o600)
        with exporter_process(tmp_path, config_document(url)) as process:
            assert process.config == config
            log = started_log(process.log)
    assert WARNING not in log
