"""A short-lived cache for hot reads: one database round trip per key per ``ttl_s``, however many callers.

The latest forecast of a pair changes once a minute, yet it is the answer most polled. Under load,
reusing it for half a second takes the database off the request path without making it stale in
any way that matters (its ``freshness`` block still says when it was read). Concurrent misses for
the same key wait for one query instead of each sending their own. Keys come from callers (a time
range), so the cache holds at most ``max_entries``: expired ones go first, then the oldest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


MAX_ENTRIES = 256


class MicroCache(Generic[T]):
    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.entries: dict[str, tuple[float, T]] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def _make_room(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self.entries.items() if expires <= now]:
            del self.entries[key]
        while len(self.entries) >= self.max_entries:
            del self.entries[next(iter(self.entries))]
        for key in [k for k, lock in self.locks.items() if k not in self.entries and not lock.locked()]:
            del self.locks[key]

    def _fresh(self, key: str) -> T | None:
        hit = self.entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def expires(self, key: str) -> float:
        """When ``key``'s entry expires (``time.monotonic()``); 0 when there is none."""
        hit = self.entries.get(key)
        return hit[0] if hit is not None else 0.0

    async def get(self, key: str, make: Callable[[], Awaitable[T]], ttl_s: float | None = None) -> T:
        """The cached value of ``key``, or ``make()``'s, kept ``ttl_s`` (default: the cache's);
        exceptions propagate and nothing is kept."""
        value = self._fresh(key)
        if value is not None:
            return value
        async with self.locks.setdefault(key, asyncio.Lock()):
            value = self._fresh(key)
            if value is None:
                value = await make()
                if len(self.entries) >= self.max_entries:
                    self._make_room()
                self.entries[key] = (time.monotonic() + (self.ttl_s if ttl_s is None else ttl_s), value)
            return value
