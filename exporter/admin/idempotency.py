"""`Idempotency-Key`: the same key with the same request gives the first answer again.

The key is also the ClientToken of the cloud call, so the cloud itself never creates the
route twice, even across exporter restarts (this store lives in memory) or between
replicas. The store adds what the cloud cannot: requests that arrive while the first is
still running wait for its answer instead of racing it, and a key reused with another
request is refused (422) before any cloud call.

Answers the same request may improve on later (5xx: busy, unreachable, timed out) are not
kept, so the client's retry runs again with the same ClientToken. Everything else is kept
for `ttl` seconds, at most `max_entries` keys (the oldest go first).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An HTTP answer as it was first sent."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    failure_reason: str | None = None
    """The `reason` label when the answer is a failure (a replay counts it again)."""


class IdempotencyKeyReused(Exception):
    """The key was first used with another request."""


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    answer: asyncio.Future[StoredAnswer]
    created: float


class IdempotencyStore:
    """Answers by `Idempotency-Key`, shared by the requests that carry the same key."""

    def __init__(self, *, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def once(
        self, key: str, fingerprint: str, run: Callable[[], Awaitable[StoredAnswer]]
    ) -> tuple[StoredAnswer, bool]:
        """The answer to the request `fingerprint` under `key`, and whether it is a replay.

        Raises `IdempotencyKeyReused` when `key` was first used with another fingerprint.
        """
        self._expire()
        entry = self._entries.get(key)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                raise IdempotencyKeyReused(key)
            return await asyncio.shield(entry.answer), True
        future: asyncio.Future[StoredAnswer] = asyncio.get_running_loop().create_future()
        self._entries[key] = _Entry(fingerprint, future, self._clock())
        try:
            answer = await run()
        except BaseException as error:
            # Requests waiting on this one fail as it did; the key is free for a retry.
            self._entries.pop(key, None)
            if isinstance(error, Exception):
                future.set_exception(error)
                future.exception()  # marks it retrieved: there may be no one waiting
            else:
                future.cancel()
            raise
        future.set_result(answer)
        if answer.status >= 500:
            self._entries.pop(key, None)
        return answer, False

    def _expire(self) -> None:
        cutoff = self._clock() - self._ttl
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if oldest.created > cutoff and len(self._entries) < self._max_entries:
                break
            if not oldest.answer.done():
                # Still running: keep it, and let the store exceed its size for a moment.
                break
            del self._entries[key]
