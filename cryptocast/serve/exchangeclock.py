"""The exchange's clock, as the API sees it: data lag is measured against it, not local wall time.

Candles carry exchange times. Lag measured against the local clock is wrong whenever the two differ
(an offset, or an exchange clock that runs at another rate), so the router asks the exchange
(``GET /api/v3/time``) and extrapolates between asks. Two asks give the rate as well as the offset:
local and exchange clocks normally run at the same rate, but nothing here assumes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptocast.exchange.binance import BinanceExchange

REFRESH_S = 1.0  # ask the exchange at most this often; in between, extrapolate
MIN_RATE_SPAN_S = 0.5  # two asks closer than this give no usable rate
MAX_EXTRAPOLATION_S = 5.0  # a reading without an ask for longer than this is not given
ServerTime = Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float  # local wall time half-way through the ask
    exchange_ms: int


def server_time(exchange: BinanceExchange) -> ServerTime:
    """``GET /api/v3/time`` through the configured exchange client."""

    async def ask() -> int:
        return int((await exchange.get_server_time())["serverTime"])

    return ask


class ExchangeClock:
    """Exchange time now, from the last two answers of ``ask`` (offset and rate)."""

    def __init__(self, ask: ServerTime, refresh_s: float = REFRESH_S) -> None:
        self.ask, self.refresh_s = ask, refresh_s
        self.previous: Sample | None = None
        self.last: Sample | None = None
        self.lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """Exchange seconds per local second (1.0 until two asks far enough apart exist)."""
        if (
            self.previous is None
            or self.last is None
            or self.last.wall_s - self.previous.wall_s < MIN_RATE_SPAN_S
        ):
            return 1.0
        span_ms = (self.last.wall_s - self.previous.wall_s) * 1000
        return (self.last.exchange_ms - self.previous.exchange_ms) / span_ms

    def extrapolate(self, wall_s: float) -> float:
        assert self.last is not None
        return self.last.exchange_ms + (wall_s - self.last.wall_s) * 1000 * self.rate

    def estimate_ms(self) -> float | None:
        """Exchange time in ms without asking (for answers renewed between asks); None when the last
        answer is older than ``MAX_EXTRAPOLATION_S``."""
        wall = time.time()
        if self.last is None or wall - self.last.wall_s > MAX_EXTRAPOLATION_S:
            return None
        return self.extrapolate(wall)

    async def now_ms(self) -> float:
        """Exchange time in ms; asks the exchange when the last answer is older than ``refresh_s``."""
        wall = time.time()
        if self.last is None or wall - self.last.wall_s > self.refresh_s:
            async with self.lock:
                if self.last is None or time.time() - self.last.wall_s > self.refresh_s:
                    before = time.time()
                    exchange_ms = await self.ask()
                    sample = Sample((before + time.time()) / 2, exchange_ms)
                    if self.last is None or sample.wall_s - self.last.wall_s >= MIN_RATE_SPAN_S:
                        self.previous = self.last
                    self.last = sample
        return self.extrapolate(time.time())
