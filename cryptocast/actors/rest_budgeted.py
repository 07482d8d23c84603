"""One pair's REST calls, each paid for from the IP-wide weight budget before it is sent.

Every pair on an IP draws on one budget (``budget.py``): a call first reserves its weight, waiting
while the minute is spent, and hands the exchange's own count back after the answer. A 429 or 418
blocks every pair for ``Retry-After``; a 5xx or an unreachable exchange is retried here with capped
exponential back-off, so callers get an answer or a 4xx, never a transient failure. Klines come
back without the candles dated after the exchange's now (``sanity.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from binance.exceptions import BinanceAPIException, BinanceRequestException

from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.actors.sanity import split_future
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.records import Candle, CandleBlock

T = TypeVar("T")

log = logging.getLogger(INGEST_LOGGER)

PAGE = 1000
KLINES_WEIGHT = 2
TIME_WEIGHT = 1
RETRY_BASE_S = 0.2
RETRY_CAP_S = 10.0


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt``: doubling from the base, capped."""
    return min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt)


class Budget(Protocol):
    """What ingestion needs from the shared rate-limit budget (a Ray actor or a local object)."""

    async def reserve(self, weight: int, backfill: bool = False) -> float: ...
    async def observe(self, used_weight: int | None) -> None: ...
    async def penalize(self, retry_after_s: float) -> None: ...
    async def reserve_connection(self) -> float: ...


class BudgetedRest:
    """The pair's REST calls: under the shared budget, retried until answered."""

    def __init__(self, ctx: PairContext, exchange: BinanceExchange, budget: Budget) -> None:
        self.ctx = ctx
        self.exchange = exchange
        self.budget = budget

    async def call(self, weight: int, call: Callable[[], Awaitable[T]], backfill: bool = False) -> T:
        """``call`` once its weight is reserved; ``backfill`` calls yield to live ones (``budget.py``)."""
        attempt = 0
        while True:
            wait = await self.budget.reserve(weight, backfill)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                self.ctx.counters.rest_calls += 1
                result = await call()
                await self.budget.observe(self.exchange.used_weight)
                return result
            except BinanceAPIException as exc:
                if exc.status_code in (418, 429):
                    if exc.status_code == 429:
                        self.ctx.counters.throttled += 1
                    else:
                        self.ctx.counters.banned += 1
                    retry_after = float(exc.response.headers.get("Retry-After", 60)) if exc.response else 60.0
                    log.warning(
                        "rate limited (HTTP %s): waiting %.0f s",
                        exc.status_code,
                        retry_after,
                        extra=self.ctx.extra,
                    )
                    await self.budget.penalize(retry_after)
                    continue
                if exc.status_code < 500:
                    raise
                self.ctx.last_error = f"exchange HTTP {exc.status_code}: {exc.message}"
            except (TimeoutError, BinanceRequestException, OSError) as exc:
                self.ctx.last_error = f"exchange unreachable: {exc}"
            attempt += 1
            await asyncio.sleep(backoff_s(attempt))

    async def server_time(self) -> int:
        return int((await self.call(TIME_WEIGHT, self.exchange.get_server_time))["serverTime"])

    async def page(self, start_ms: int, end_ms: int | None = None) -> list[Candle]:
        return (await self.block(start_ms, end_ms)).candles()

    async def block(self, start_ms: int, end_ms: int | None = None, backfill: bool = False) -> CandleBlock:
        page = await self.call(
            KLINES_WEIGHT, lambda: self.exchange.klines(self.ctx.symbol, start_ms, end_ms, PAGE), backfill
        )
        assert self.ctx.clock is not None
        now = self.ctx.clock.now_ms()
        block, future = split_future(page.block, now)  # sorted: nothing real comes after these
        if future:
            self.ctx.refuse_future(future, now, "REST")
        return block
