"""Sharding: which gateways this process polls when several processes share a fleet.

The kube-state-metrics model: every shard sees the whole configuration (and discovers the
whole fleet), and keeps the gateways whose stable hash lands on its index. The hash is
64-bit FNV-1a of the gateway ID, modulo the number of shards: the same ID goes to the same
shard in every process, on every platform and Python version (Python's own `hash()` of a
string changes from process to process). Each shard spends `1 / total` of every API rate
budget, because all shards call the API with the same accounts.

`--shard=auto` takes the index from the ordinal of a StatefulSet pod's name
(`aliyun-vpn-exporter-2` is shard 2), read from `POD_NAME` (set it with the Downward API)
or else `HOSTNAME` (a StatefulSet pod's hostname is its name).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF

AUTO = "auto"
POD_NAME_VARIABLES = ("POD_NAME", "HOSTNAME")
"""Where `--shard=auto` looks for the pod name, in this order."""

_ORDINAL = re.compile(r"-(\d+)$")
T = TypeVar("T")


class ShardError(ValueError):
    """Shard flags that cannot work; the message says what to change."""


def stable_hash(text: str) -> int:
    """64-bit FNV-1a of `text` (UTF-8): the same value in every process."""
    value = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return value


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `total` (0-based); `Shard(0, 1)` is an unsharded exporter."""

    index: int = 0
    total: int = 1

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ShardError(f"--total-shards must be at least 1, not {self.total}")
        if not 0 <= self.index < self.total:
            raise ShardError(
                f"--shard must be between 0 and {self.total - 1} "
                f"(--total-shards={self.total}), not {self.index}"
            )

    @property
    def sharded(self) -> bool:
        return self.total > 1

    def owns(self, vpn_gateway_id: str) -> bool:
        """Whether this shard polls the gateway."""
        return self.total == 1 or stable_hash(vpn_gateway_id) % self.total == self.index

    def select(self, vpn_gateway_ids: Iterable[str]) -> list[str]:
        """The gateways of `vpn_gateway_ids` this shard polls, in their order."""
        return [gateway for gateway in vpn_gateway_ids if self.owns(gateway)]

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


UNSHARDED = Shard()


def ordinal_of(pod_name: str) -> int | None:
    """The ordinal of a StatefulSet pod name (`exporter-2` → 2), or None."""
    match = _ORDINAL.search(pod_name.strip())
    return int(match[1]) if match else None


def shard_from_flags(
    shard: str | None, total_shards: int | None, environ: Mapping[str, str] | None = None
) -> Shard:
    """The `Shard` that `--shard` and `--total-shards` describe.

    `shard` is an index or `auto`; without `--total-shards` the exporter is unsharded
    (`--shard` alone is an error, since the index means nothing without the total).
    """
    environ = os.environ if environ is None else environ
    if total_shards is None:
        if shard not in (None, "0"):
            raise ShardError("--shard needs --total-shards")
        return UNSHARDED
    if shard is None:
        if total_shards == 1:
            return UNSHARDED
        raise ShardError("--total-shards needs --shard (an index, or auto in a StatefulSet)")
    if shard.strip().lower() == AUTO:
        return Shard(_auto_index(environ), total_shards)
    if not shard.strip().isdigit():
        raise ShardError(f"--shard must be a number or auto, not {shard!r}")
    return Shard(int(shard), total_shards)


def _auto_index(environ: Mapping[str, str]) -> int:
    for variable in POD_NAME_VARIABLES:
        name = environ.get(variable, "").strip()
        if not name:
            continue
        index = ordinal_of(name)
        if index is None:
            raise ShardError(
                f"--shard=auto: {variable}={name!r} does not end in a StatefulSet ordinal "
                "(like aliyun-vpn-exporter-2)"
            )
        return index
    raise ShardError(
        "--shard=auto needs the pod name in POD_NAME or HOSTNAME "
        "(run in a StatefulSet, or give the index)"
    )
