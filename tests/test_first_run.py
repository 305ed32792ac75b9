"""The README's first command, as a new user types it on Debian 12 with its own Python.

Debian's `/usr/bin/python3` is "externally managed" (PEP 668): a bare `pip install .` is
refused there, so the README's first command makes a virtual environment. This runs that
command, as written in the README, with Debian's Python first on PATH, in a copy of the
repository's files; then the demo it starts must serve the demo fleet. It needs Debian's
`python3-venv` and the package index pip is configured with (skips without them, fails
under CI=true).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.demo_harness import STARTUP_BOUND, free_port
from tests.required_tools import APT, REPO, in_ci

SYSTEM_PYTHON = Path("/usr/bin/python3")
INSTALL_BOUND = 600
"""Seconds the install may take: proves it finishes at all, no speed claim."""


def _first_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Try it") :]
    (command,) = re.findall(r"```sh\n(.+?)\n```", section[: section.index("\n## ")], re.S)
    return command


def _require_system_python() -> None:
    usable = SYSTEM_PYTHON.exists() and (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import ensurepip, venv"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not usable:
        message = f"Debian's python3 with venv is needed ({APT} python3 python3-venv)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's tracked files, as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    target = tmp_path_factory.mktemp("checkout")
    for name in filter(None, listed):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            destination = target / os.fsdecode(name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read_bytes())
    return target


def _debian_environment() -> dict[str, str]:
    """A user's shell on Debian: its Python first on PATH, no virtual environment active."""
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    environ["PATH"] = os.pathsep.join([str(SYSTEM_PYTHON.parent), "/bin"])
    return environ


def test_a_bare_pip_install_is_refused_by_debians_python(checkout: Path) -> None:
    """Why the README does not say `pip install .`."""
    _require_system_python()
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "pip", "install", "--dry-run", "."],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=_debian_environment(),
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "externally-managed-environment" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def demo(checkout: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """The README's first command, run as written but for a free port for the demo."""
    _require_system_python()
    *install, start = [part.strip() for part in _first_command().split("&&")]
    assert start.endswith("aliyun-vpn-exporter --demo"), start
    result = subprocess.run(
        ["bash", "-c", " && ".join(install)],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=_debian_environment(),
        timeout=INSTALL_BOUND,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen(
        [*shlex.split(start), f"--web.listen-address=127.0.0.1:{port}"],
        cwd=checkout,
        env=_debian_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield port, process
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_readmes_first_command_installs_and_runs_the_demo_with_debians_python(
    checkout: Path, demo: tuple[int, subprocess.Popen[str]]
) -> None:
    port, process = demo
    base = subprocess.run(
        [checkout / ".venv" / "bin" / "python", "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert base.stdout.strip() == "/usr", "the virtual environment is made by Debian's Python"
    deadline = time.monotonic() + STARTUP_BOUND
    text = ""
    while 'vpn_gateway_id="vpn-hz1healthy"' not in text:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the demo served no demo gateway"
        time.sleep(0.2)
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.TransportError:
            continue
    assert "aliyun_vpn_diagnose_item_status{" in text


def test_the_installed_package_names_the_project_urls(
    checkout: Path, demo: tuple[int, subprocess.Popen[str]]
) -> None:
    """pyproject.toml's URLs reach the installed metadata, and they are the URLs the deploy
    files and the runbook links use."""
    del demo  # the install made by the README's first command
    script = (
        "import importlib.metadata as m; "
        "print('\\n'.join(m.metadata('aliyun-vpn-exporter').get_all('Project-URL')))"
    )
    result = subprocess.run(
        [checkout / ".venv" / "bin" / "python", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    urls = dict(line.split(", ", 1) for line in result.stdout.splitlines())
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert urls == declared["project"]["urls"]
    home = urls["Homepage"]
    assert f'org.opencontainers.image.source="{home}"' in (
        REPO / "deploy" / "Dockerfile"
    ).read_text(encoding="utf-8")
    unit = (REPO / "deploy" / "systemd" / "aliyun-vpn-exporter.service").read_text()
    assert f"Documentation={home}" in unit
    rules = (REPO / "deploy" / "prometheus" / "aliyun-vpn-exporter.rules.yml").read_text()
    assert set(re.findall(r"runbook_url: (\S+)/blob/", rules)) == {home}
