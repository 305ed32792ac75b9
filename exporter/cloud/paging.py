"""Paginated Describe* listings, and the cheaper of two ways to look many resources up.

DescribeVpnGateways and DescribeVpnConnections answer at most 50 resources a page. A set
of gateways can be looked up one call each (filtered by ID), or by listing the whole
region and keeping what is wanted: which is cheaper depends on the region's size, which
only the first page of the listing tells (`TotalCount`). `lookup` reads that page, then
takes whichever way costs fewer calls, so a target of two gateways in a region of
10,000 costs three calls, and a discovered fleet of 1,000 costs 20 pages, not 1,000 calls.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from exporter.cloud.errors import ApiError, InvalidResponse

MAX_PAGE_SIZE = 50
"""The largest PageSize the Describe actions accept."""
MAX_PAGES = 2000
"""A bound on one listing (100,000 resources), against an answer whose TotalCount lies."""
LOOKUP_CONCURRENCY = 8
"""One-by-one lookups in flight at once (the rate budget paces them anyway)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: the listing's `TotalCount` and this page's resources."""

    total: int
    items: list[T]


FetchPage = Callable[[int], Awaitable[Page[T]]]
"""Fetches page N (from 1) of a listing."""


async def all_pages(fetch: FetchPage[T], first: Page[T] | None = None) -> list[T]:
    """Every resource of a listing, page by page (`first` when page 1 is already read).

    Stops at the last page `TotalCount` implies, or at an empty or short page.
    """
    page = first if first is not None else await fetch(1)
    items = list(page.items)
    pages = min(math.ceil(page.total / MAX_PAGE_SIZE), MAX_PAGES)
    number = 1
    while number < pages and len(page.items) == MAX_PAGE_SIZE:
        number += 1
        page = await fetch(number)
        items.extend(page.items)
    return items


@dataclass(slots=True)
class Lookup(Generic[T]):
    """What a `lookup` found per wanted key, and the keys whose lookup failed."""

    found: dict[str, list[T]] = field(default_factory=dict)
    failed: dict[str, ApiError] = field(default_factory=dict)


async def lookup(
    wanted: Sequence[str],
    *,
    region_page: FetchPage[T],
    each: Callable[[str], Awaitable[list[T]]],
    key_of: Callable[[T], str],
) -> Lookup[T]:
    """The resources of every key in `wanted` (a gateway ID), by whichever way costs fewer
    calls: one `each(key)` per key, or the region's whole listing (`region_page`), grouped
    by `key_of`. A failed region listing fails every key; a failed `each` only its key.
    """
    result: Lookup[T] = Lookup()
    if not wanted:
        return result
    if len(wanted) > 1:
        try:
            first = await region_page(1)
            pages = math.ceil(first.total / MAX_PAGE_SIZE)
            if pages - 1 <= len(wanted):
                items = await all_pages(region_page, first)
                grouped = group(items, key_of)
                result.found = {key: grouped.get(key, []) for key in wanted}
                return result
        except ApiError as error:
            result.failed = dict.fromkeys(wanted, error)
            return result
    semaphore = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def one(key: str) -> None:
        async with semaphore:
            try:
                result.found[key] = await each(key)
            except ApiError as error:
                result.failed[key] = error

    await asyncio.gather(*(one(key) for key in wanted))
    result.found = {key: result.found[key] for key in wanted if key in result.found}
    return result


def group(items: Iterable[T], key_of: Callable[[T], str]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(key_of(item), []).append(item)
    return grouped


# --- reading a listing's envelope ---------------------------------------------------------


def envelope(
    action: str, payload: Mapping[str, Any], outer: str, inner: str
) -> tuple[int, list[Mapping[str, Any]]]:
    """`TotalCount` and the resource objects of a Describe* answer
    (`{"TotalCount": n, outer: {inner: [...]}}`); `InvalidResponse` when unreadable.

    A missing list is an empty page; resources that are not objects are skipped.
    """
    request_id = payload.get("RequestId") if isinstance(payload.get("RequestId"), str) else None

    def invalid(message: str) -> InvalidResponse:
        return InvalidResponse(action, message, request_id=request_id)

    total = _count(payload.get("TotalCount"))
    container = payload.get(outer)
    if container is None or container == "":
        entries: Any = []
    elif isinstance(container, Mapping):
        entries = container.get(inner) or []
    elif isinstance(container, list):
        entries = container  # tolerated: the list without its wrapper object
    else:
        raise invalid(f"{outer} is not an object")
    if not isinstance(entries, list):
        raise invalid(f"{outer}.{inner} is not a list")
    resources = [entry for entry in entries if isinstance(entry, Mapping)]
    if total is None:
        if "TotalCount" in payload:
            raise invalid("TotalCount is not a count")
        total = len(resources)
    return total, resources


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


MAX_LABEL_LENGTH = 256
"""Longer API strings are cut: a label value is not the place for a novel."""


def word(value: object) -> str | None:
    """`text` of a field with few distinct values (a state, a status, a spec), interned:
    thousands of resources then share one string instead of holding a copy each."""
    value = text(value)
    return None if value is None else sys.intern(value)


def text(value: object) -> str | None:
    """A string field of a resource, as a label value: None when absent, empty or not a
    string (numbers are accepted as their text), cut at `MAX_LABEL_LENGTH`."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:MAX_LABEL_LENGTH] or None
