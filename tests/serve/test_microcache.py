"""The hot-read cache: one query per key per TTL under concurrent callers; errors are not kept."""

from __future__ import annotations

import asyncio
import contextlib
import time
import tracemalloc

import pytest

from cryptocast.serve.microcache import MicroCache

TTL_S = 0.2
FLOOD = 100_000  # distinct keys a caller can make up (a symbol, a time range) and send one after another
FLOOD_GROWTH_BYTES = 256 * 1024  # what the cache may still hold after the flood: its bound, not the flood


class Counting:
    """A value maker that returns how many times it has been called, after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls, self.delay_s = 0, delay_s

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return self.calls


async def test_concurrent_misses_share_one_call_and_expire() -> None:
    cache: MicroCache[int] = MicroCache(TTL_S)
    make = Counting(0.05)
    assert await asyncio.gather(*(cache.get("BTCUSDT", make) for _ in range(20))) == [1] * 20
    assert await cache.get("ETHUSDT", make) == 2  # keys are separate
    await asyncio.sleep(TTL_S * 1.5)
    assert await cache.get("BTCUSDT", make) == 3


async def test_errors_are_not_cached() -> None:
    cache: MicroCache[int] = MicroCache(TTL_S)

    async def fail() -> int:
        raise LookupError("not tracked")

    async def succeed() -> int:
        return 7

    with pytest.raises(LookupError):
        await cache.get("X", fail)
    assert await cache.get("X", succeed) == 7


async def test_caller_chosen_keys_cannot_grow_it_past_its_bound() -> None:
    cache: MicroCache[int] = MicroCache(60.0, max_entries=8)

    async def make() -> int:
        return 1

    for i in range(100):
        await cache.get(f"candles {i}", make)
    assert len(cache.entries) <= 8 and not cache.flights
    assert "candles 99" in cache.entries and "candles 0" not in cache.entries  # the oldest went first


async def test_a_flood_of_distinct_failing_keys_leaves_nothing_behind() -> None:
    cache: MicroCache[int] = MicroCache(60.0)

    async def not_tracked() -> int:
        raise LookupError("not tracked")

    async def ask(key: str) -> None:
        with contextlib.suppress(LookupError):
            await cache.get(key, not_tracked)

    await ask("warm-up")
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(FLOOD):
            await ask(f"NOSUCH{i}")
        grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown < FLOOD_GROWTH_BYTES, f"{grown / 1e6:.1f} MB left by {FLOOD} failed keys"
    assert not cache.entries and not cache.flights


async def test_a_lock_ends_with_its_last_waiter() -> None:
    cache: MicroCache[int] = MicroCache(60.0)
    make = Counting(0.05)

    async def failing() -> int:
        await asyncio.sleep(0.05)
        raise LookupError("not tracked")

    results = await asyncio.gather(*(cache.get("X", failing) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results) and not cache.flights
    assert await asyncio.gather(*(cache.get("Y", make) for _ in range(10))) == [1] * 10
    assert not cache.flights and list(cache.entries) == ["Y"]


async def test_a_cache_without_stale_answers_waits_for_the_refresh() -> None:
    cache: MicroCache[int] = MicroCache(TTL_S, stale=False)
    slow = Counting(0.1)
    assert await cache.get("health", slow) == 1
    await asyncio.sleep(TTL_S * 1.2)  # expired: with stale answers the previous value would stand in
    refresh = asyncio.create_task(cache.get("health", slow))
    await asyncio.sleep(0.01)
    assert await cache.get("health", slow) == 2 and await refresh == 2 and slow.calls == 2


async def test_a_caller_may_keep_an_entry_shorter() -> None:
    cache: MicroCache[int] = MicroCache(60.0)
    make = Counting()
    assert await cache.get("BTCUSDT", make, ttl_s=0.05) == 1
    assert cache.window("BTCUSDT")[0] - time.monotonic() <= 0.05
    await asyncio.sleep(0.08)
    assert await cache.get("BTCUSDT", make) == 2 and cache.window("BTCUSDT")[0] - time.monotonic() > 50


async def test_callers_get_the_previous_value_while_one_refreshes() -> None:
    cache: MicroCache[int] = MicroCache(TTL_S)
    slow = Counting(0.1)
    assert await cache.get("BTCUSDT", slow) == 1
    await asyncio.sleep(TTL_S * 1.2)  # expired, within one TTL of it
    refresh = asyncio.create_task(cache.get("BTCUSDT", slow))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    assert await cache.get("BTCUSDT", slow) == 1  # not queued behind the refresh
    assert time.monotonic() - started < 0.05
    assert await refresh == 2 and await cache.get("BTCUSDT", slow) == 2
    await asyncio.sleep(TTL_S * 2.5)  # too old to stand in: callers wait for the refresh
    refresh = asyncio.create_task(cache.get("BTCUSDT", slow))
    await asyncio.sleep(0.01)
    assert await cache.get("BTCUSDT", slow) == 3 and await refresh == 3 and slow.calls == 3


async def test_news_ends_entries_and_a_refresh_it_overtook_is_not_kept() -> None:
    cache: MicroCache[int] = MicroCache(60.0)
    make = Counting(0.05)
    assert await cache.get("BTCUSDT", make) == 1
    assert await cache.get("BTCUSDT BIG", make) == 2
    assert await cache.get("ETHUSDT", make) == 3
    cache.drop(lambda key: key.split(" ")[0] == "BTCUSDT")
    assert sorted(cache.entries) == ["ETHUSDT"]
    reading = asyncio.ensure_future(cache.get("BTCUSDT", make))  # reads from before the news...
    await asyncio.sleep(0.01)
    cache.drop(lambda key: key == "BTCUSDT")  # ...that arrives while it reads
    assert await reading == 4  # its callers get it
    assert await cache.get("BTCUSDT", make) == 5  # but nobody after them
    assert await cache.get("BTCUSDT", make) == 5
