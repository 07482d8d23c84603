"""The exchange's clock as its clients see it: offset and rate from the exchange's own ``/time``.

One clock for every room, because every room measures exchange time the same way. Candle timing,
watchdogs and lag (ingestion), the training schedule (the scheduler) and data lag in answers (the
API) all follow the exchange's clock, not local wall time. On Binance it runs at wall speed; on the
replay it may run N× faster or sit at an offset, so offset and rate are measured from timed asks of
``GET /api/v3/time``, never configured: nothing outside ``cryptocast.exchange`` knows it talks to a
replay.

Two ways to keep it, one per kind of caller:

* :meth:`ExchangeClock.measure` (actors, the scheduler): two asks ``RATE_SAMPLE_S`` apart, the rate
  snapped to 1 when within ``UNIT_RATE_TOLERANCE`` of it (so wall-speed jitter reads as wall speed);
  then :meth:`~ExchangeClock.now_ms`, :meth:`~ExchangeClock.wall_seconds` and
  :meth:`~ExchangeClock.wall_at` extrapolate from it without asking again. A few milliseconds of
  jitter over half a second is a rate off by 1 %, which a replay at 60× turns into a clock
  minutes off within the hour, so long-lived callers :meth:`~ExchangeClock.refine` it now and then:
  the rate then spans everything since the first ask, and its error shrinks as that span grows.
* :meth:`ExchangeClock.refreshed_ms` (the API): asks when the last answer is older than
  ``refresh_s`` (one ask at a time, under a lock) and takes the rate from the last two answers at
  least ``MIN_RATE_SPAN_S`` apart, as measured; :meth:`~ExchangeClock.estimate_ms` extrapolates
  without asking, but not further than ``MAX_EXTRAPOLATION_S`` from the last answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptocast.exchange.binance import BinanceExchange

RATE_SAMPLE_S = 0.5  # measure(): wall gap between the two /time samples that give the rate
UNIT_RATE_TOLERANCE = 0.05  # measure(): a rate this close to 1 is the wall clock plus jitter
REFRESH_S = 1.0  # refreshed_ms(): ask the exchange at most this often; in between, extrapolate
MIN_RATE_SPAN_S = 0.5  # refreshed_ms(): two asks closer than this give no usable rate
MAX_EXTRAPOLATION_S = 5.0  # estimate_ms(): a reading without an ask for longer than this is not given
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


def _rate(previous: Sample, last: Sample) -> float:
    """Exchange ms per local wall ms between two samples."""
    return (last.exchange_ms - previous.exchange_ms) / ((last.wall_s - previous.wall_s) * 1000.0)


class ExchangeClock:
    """Exchange time from timed answers of ``ask``: the latest answer and a rate.

    ``rate`` is exchange seconds per local second; 1.0 until known.
    """

    def __init__(self, ask: ServerTime, refresh_s: float = REFRESH_S) -> None:
        self.ask, self.refresh_s = ask, refresh_s
        self.first: Sample | None = None  # measure()'s first answer: the base refine() measures from
        self.previous: Sample | None = None
        self.last: Sample | None = None
        self.rate = 1.0
        self.lock = asyncio.Lock()

    @property
    def measured(self) -> bool:
        """True once the exchange has answered."""
        return self.last is not None

    async def _sample(self) -> Sample:
        before = time.time()
        exchange_ms = await self.ask()
        return Sample((before + time.time()) / 2, int(exchange_ms))

    # --- measured once (actors, the scheduler) ----------------------------------------------------
    async def measure(self) -> ExchangeClock:
        """Two timed samples ``RATE_SAMPLE_S`` apart give offset and rate (snapped to 1 within
        ``UNIT_RATE_TOLERANCE``, or when not positive). Nothing changes unless both answer."""
        first = await self._sample()
        await asyncio.sleep(RATE_SAMPLE_S)
        second = await self._sample()
        rate = _rate(first, second)
        if abs(rate - 1.0) < UNIT_RATE_TOLERANCE or rate <= 0:
            rate = 1.0
        self.first, self.previous, self.last, self.rate = first, first, second, rate
        return self

    async def refine(self) -> ExchangeClock:
        """One more timed ask; the rate from :meth:`measure`'s first answer to it (snapped as there)."""
        if self.first is None:
            return await self.measure()
        sample = await self._sample()
        rate = _rate(self.first, sample)
        if abs(rate - 1.0) < UNIT_RATE_TOLERANCE or rate <= 0:
            rate = 1.0
        self.previous, self.last, self.rate = self.last, sample, rate
        return self

    def _extrapolate(self, wall_s: float) -> float:
        if self.last is None:
            raise RuntimeError("the exchange clock has no answer yet")
        return self.last.exchange_ms + (wall_s - self.last.wall_s) * 1000.0 * self.rate

    def now_ms(self) -> int:
        """Exchange time now, extrapolated from the latest answer without asking."""
        return int(self._extrapolate(time.time()))

    def wall_seconds(self, exchange_ms: float) -> float:
        """How long an exchange-time span lasts in wall seconds."""
        return exchange_ms / self.rate / 1000.0

    def wall_at(self, exchange_ms: float) -> float:
        """Wall time (epoch seconds) at which the exchange clock shows ``exchange_ms``."""
        if self.last is None:
            raise RuntimeError("the exchange clock has no answer yet")
        return self.last.wall_s + (exchange_ms - self.last.exchange_ms) / self.rate / 1000.0

    # --- refreshed as it is read (the API) --------------------------------------------------------
    async def refreshed_ms(self) -> float:
        """Exchange time in ms; asks the exchange when the last answer is older than ``refresh_s``."""
        wall = time.time()
        if self.last is None or wall - self.last.wall_s > self.refresh_s:
            async with self.lock:
                if self.last is None or time.time() - self.last.wall_s > self.refresh_s:
                    self._record(await self._sample())
        return self._extrapolate(time.time())

    def _record(self, sample: Sample) -> None:
        """Keep ``sample`` as the last answer; the one before it stays the rate's base unless the two
        are ``MIN_RATE_SPAN_S`` apart. The rate is taken as measured (1.0 until there is a base)."""
        if self.last is None or sample.wall_s - self.last.wall_s >= MIN_RATE_SPAN_S:
            self.previous = self.last
        self.last = sample
        if self.previous is None or self.last.wall_s - self.previous.wall_s < MIN_RATE_SPAN_S:
            self.rate = 1.0
        else:
            self.rate = _rate(self.previous, self.last)

    def estimate_ms(self) -> float | None:
        """Exchange time in ms without asking (for answers renewed between asks); None when the last
        answer is older than ``MAX_EXTRAPOLATION_S``."""
        wall = time.time()
        if self.last is None or wall - self.last.wall_s > MAX_EXTRAPOLATION_S:
            return None
        return self._extrapolate(wall)
