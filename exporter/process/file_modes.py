"""A warning at start for files holding secrets that other users of the machine can read.

A web config holds bcrypt hashes, a bearer tokens file tokens, a TLS key file a private
key, and the config holds access keys when they are written in it (rather than given with
`!env` or `!file`, or from the environment: then the config may well be readable by all,
as the systemd unit's dynamic user needs). Prometheus' own exporters do not check, but a
world-readable key on a shared host is a leak waiting to happen; the exporter says so
(once, at start) rather than refusing to run, since containers often mount secrets with
other modes on purpose.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel, SecretStr

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


def secrets_of(value: object) -> Iterator[str]:
    """Every secret value held by `value` (a config model, mappings and sequences of them)."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secrets_of(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secrets_of(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secrets_of(item)


def holds_secrets(path: Path, config: BaseModel) -> bool:
    """Whether one of the config's secrets is written in the file at `path` itself."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(secret and secret in text for secret in secrets_of(config))
