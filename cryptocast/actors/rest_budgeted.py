"""REST calls of ingestion, each paid for from the IP-wide weight budget before it is sent.

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


async def budgeted(
    budget: Budget,
    exchange: BinanceExchange,
    weight: int,
    call: Callable[[], Awaitable[T]],
    backfill: bool = False,
    ctx: PairContext | None = None,
) -> T:
    """``call`` once its weight is reserved, tried again until it answers or fails with a 4xx.

    Every REST call of ingestion goes through here: a pair's (with its ``ctx``, which counts them and
    keeps the last error) and the exchange-clock asks of a pair host or a stream actor, so that a
    429 or 418 on any of them holds every caller on the IP for ``Retry-After`` instead of failing the
    caller (whose restart would ask again at once and turn a 429 into a ban). ``backfill`` calls
    yield to live ones (``budget.py``). The weight is reserved before ``call`` starts, so a timed ask
    inside it does not time the budget's round trip.
    """
    extra = ctx.extra if ctx is not None else None
    attempt = 0
    while True:
        wait = await budget.reserve(weight, backfill)
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        try:
            if ctx is not None:
                ctx.counters.rest_calls += 1
            result = await call()
            await budget.observe(exchange.used_weight)
            return result
        except BinanceAPIException as exc:
            if exc.status_code in (418, 429):
                if ctx is not None and exc.status_code == 429:
                    ctx.counters.throttled += 1
                elif ctx is not None:
                    ctx.counters.banned += 1
                retry_after = float(exc.response.headers.get("Retry-After", 60)) if exc.response else 60.0
                log.warning(
                    "rate limited (HTTP %s): waiting %.0f s", exc.status_code, retry_after, extra=extra
                )
                await budget.penalize(retry_after)
                continue
            if exc.status_code < 500:
                raise
            error = f"exchange HTTP {exc.status_code}: {exc.message}"
        except (TimeoutError, BinanceRequestException, OSError) as exc:
            error = f"exchange unreachable: {exc}"
        if ctx is not None:
            ctx.last_error = error
        attempt += 1
        await asyncio.sleep(backoff_s(attempt))


class BudgetedRest:
    """The pair's REST calls: under the shared budget, retried until answered."""

    def __init__(self, ctx: PairContext, exchange: BinanceExchange, budget: Budget) -> None:
        self.ctx = ctx
        self.exchange = exchange
        self.budget = budget

    async def call(self, weight: int, call: Callable[[], Awaitable[T]], backfill: bool = False) -> T:
        """``call`` under the budget, counted as the pair's (``budgeted``)."""
        return await budgeted(self.budget, self.exchange, weight, call, backfill, self.ctx)

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
