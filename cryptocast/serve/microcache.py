"""A short-lived cache for hot reads: one database round trip per key per ``ttl_s``, however many callers.

The latest forecast of a pair changes once a minute, yet it is the answer most polled. Under load,
reusing it for half a second takes the database off the request path without making it stale in
any way that matters (its ``freshness`` block still says when it was read). Concurrent misses for
the same key wait for one query instead of each sending their own. Keys come from callers (a
symbol, a time range), so everything the cache holds is bounded: at most ``max_entries`` values
(expired ones go first, then the oldest), and a key's lock lives only while someone holds or waits
for it, so keys whose reads fail (a pair that does not exist) leave nothing behind.
While one caller refreshes an expired entry, the others get the previous value if it expired less
than one TTL ago, instead of queueing behind the refresh (stale while revalidate): a short TTL then
costs one refresh per TTL, not a stall of every caller. A cache built with ``stale=False`` never
does this (an answer that must not be older than its TTL). News of a change (``drop``) ends
entries early; a refresh that was already reading when the news came is returned to its callers
but not kept, since it may have read the data from before the change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


MAX_ENTRIES = 256


class _Flight:
    """One key's lock and how many callers hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class MicroCache(Generic[T]):
    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES, stale: bool = True) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.stale = stale
        self.entries: dict[
            str, tuple[float, float, T]
        ] = {}  # fresh until, usable while refreshing until, value
        self.flights: dict[str, _Flight] = {}  # keys being read now
        self.drops = 0  # how many times news ended entries: a refresh that saw it change is not kept

    def _make_room(self) -> None:
        now = time.monotonic()
        for key in [k for k, (_, stale, _) in self.entries.items() if stale <= now]:
            del self.entries[key]
        while len(self.entries) >= self.max_entries:
            del self.entries[next(iter(self.entries))]

    def _fresh(self, key: str) -> T | None:
        hit = self.entries.get(key)
        return hit[2] if hit is not None and hit[0] > time.monotonic() else None

    def window(self, key: str) -> tuple[float, float]:
        """When ``key``'s entry stops being fresh, and stops being given while refreshed
        (``time.monotonic()``); zeros when there is none."""
        hit = self.entries.get(key)
        return (hit[0], hit[1]) if hit is not None else (0.0, 0.0)

    def drop(self, match: Callable[[str], bool]) -> None:
        """End every entry whose key ``match``es, now."""
        self.drops += 1
        for key in [k for k in self.entries if match(k)]:
            del self.entries[key]

    async def get(self, key: str, make: Callable[[], Awaitable[T]], ttl_s: float | None = None) -> T:
        """The cached value of ``key``, or ``make()``'s, kept ``ttl_s`` (default: the cache's);
        exceptions propagate and nothing is kept."""
        value = self._fresh(key)
        if value is not None:
            return value
        flight = self.flights.get(key)
        hit = self.entries.get(key)
        if flight is not None and hit is not None and hit[1] > time.monotonic():
            return hit[2]  # being refreshed: the previous value, at most one TTL past fresh
        if flight is None:
            flight = self.flights[key] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                value = self._fresh(key)  # filled while this caller waited
                return value if value is not None else await self._refresh(key, make, ttl_s)
        finally:
            flight.users -= 1
            if not flight.users:
                del self.flights[key]

    async def _refresh(self, key: str, make: Callable[[], Awaitable[T]], ttl_s: float | None) -> T:
        drops = self.drops
        value = await make()
        if drops != self.drops:
            return value
        if key not in self.entries and len(self.entries) >= self.max_entries:
            self._make_room()
        ttl = self.ttl_s if ttl_s is None else ttl_s
        now = time.monotonic()
        self.entries[key] = (now + ttl, now + (2 * ttl if self.stale else ttl), value)
        return value
