"""The start-up warning about secret files other users can read (issue 12, defect 12), from
the command line as users run it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from tests.admin_harness import KEY_ID, KEY_SECRET
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


def test_defect_12_a_config_with_its_secrets_elsewhere_may_be_read_by_all(
    tmp_path: Path,
) -> None:
    with simulator_thread() as (_, url):
        document = config_document(url)
        keys = document["credentials"]["default"]
        keys["access_key_id"], keys["access_key_secret"] = "ID_REF", "SECRET_REF"
        text = yaml.safe_dump(document).replace("ID_REF", "!env TEST_KEY_ID")
        text = text.replace("SECRET_REF", "!env TEST_KEY_SECRET")
        environment = {**os.environ, "TEST_KEY_ID": KEY_ID, "TEST_KEY_SECRET": KEY_SECRET}
        with exporter_process(tmp_path, text, env=environment) as process:
            assert process.config.stat().st_mode & 0o044
            log = started_log(process.log)
    assert WARNING not in log
