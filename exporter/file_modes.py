"""A warning at start for files holding secrets that other users of the machine can read.

The config may hold access keys, a web config holds bcrypt hashes, a bearer tokens file
holds tokens, a TLS key file a private key. Prometheus' own exporters do not check, but a
world-readable key on a shared host is a leak waiting to happen; the exporter says so
(once, at start) rather than refusing to run, since containers often mount secrets with
other modes on purpose.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_OTHERS_READ = stat.S_IRGRP | stat.S_IROTH


def readable_by_others(paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """The files among `paths` that their group or other users may read, with their
    permission bits; missing or unreadable ones are left to whoever reads them."""
    found = []
    for path in dict.fromkeys(paths):
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & _OTHERS_READ:
            found.append((path, stat.S_IMODE(mode)))
    return found


def warn_readable_secrets(paths: Iterable[Path]) -> None:
    """One warning per secret-holding file that its group or other users may read."""
    for path, mode in readable_by_others(paths):
        log.warning(
            "a file holding secrets is readable by other users: chmod 600 (or 640 for the "
            "exporter's group)",
            extra={"fields": {"path": str(path), "mode": f"{mode:04o}"}},
        )
