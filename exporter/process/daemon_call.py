"""Running blocking code that may never return (reading a `!file` that names a FIFO nobody
writes to, a file on a hung network mount) without letting it hold the process.

The loop's default executor will not do: its threads are joined when the interpreter
exits, so one stuck read would keep the process from ever exiting, and other work on that
executor (bcrypt checks) would delay it. `call_in_daemon_thread` runs the call on a daemon
thread of its own and waits for its result, for `give_up` to be set, or for a timeout,
whichever comes first; a call given up on keeps its thread (threads cannot be killed) until
it returns, if it ever does, and dies with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def start_daemon_call(fn: Callable[[], T], name: str) -> tuple[threading.Thread, asyncio.Future[T]]:
    """Start `fn` on a daemon thread; its thread, and a future of the running loop that
    gets its result (or exception)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not result.done():
            outcome()

    def call() -> None:
        try:
            value = fn()
        except BaseException as error:  # handed to the loop, raised there
            failure = error
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(settle, lambda: result.set_exception(failure))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: result.set_result(value))

    thread = threading.Thread(target=call, name=name, daemon=True)
    thread.start()
    return thread, result


async def outcome_of(
    result: asyncio.Future[T], *, give_up: asyncio.Event, timeout: float | None = None
) -> T | None:
    """The call's result; None once `give_up` is set first. Raises what the call raised,
    or TimeoutError after `timeout` seconds."""
    giving_up = asyncio.ensure_future(give_up.wait())
    waited: set[asyncio.Future[Any]] = {result, giving_up}
    try:
        done, _ = await asyncio.wait(waited, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        giving_up.cancel()
    if result in done:
        return result.result()
    result.cancel()
    if giving_up in done:
        return None
    raise TimeoutError
