"""The pair's websocket streams (klines and book ticker), replaced whenever they cannot be trusted.

A stream is watched, not believed: silence longer than two candle intervals, python-binance's
queue overflow, a server disconnect or anything else that ends its read loop closes it, and a
fresh connection opens after a capped back-off (the pair then repairs over REST what closed
meanwhile). Before the exchange's 24 h cutoff the replacement opens first and the old stream
closes after, so a planned renewal loses no minute; the overlap is deduplicated downstream. Every
stream's messages go to one queue, its end too, tagged with the stream, so that the end of a
stream already replaced is ignored. New connections are paid for from the IP-wide budget.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.actors.rest_budgeted import Budget, BudgetedRest, backoff_s
from cryptocast.exchange.binance import (
    BinanceExchange,
    BookQuote,
    ExchangeStreamError,
    KlineUpdate,
    MarketStream,
)
from cryptocast.records import MINUTE_MS

log = logging.getLogger(INGEST_LOGGER)

STALL_INTERVALS = 2  # candle intervals of silence before a stream counts as stalled
MIN_STALL_WALL_S = 3.0  # floor in wall seconds: a busy 2-core machine pauses longer than 0.2 s
RENEW_BEFORE_CUTOFF_MS = 30 * 60_000  # open the replacement this long before the exchange's cutoff
EXCHANGE_INFO_WEIGHT = 20  # opening a stream reads exchangeInfo for the derived-field markers
MAX_BACKOFF_ATTEMPT = 6  # consecutive failures beyond this wait no longer


@dataclass(frozen=True)
class StreamEnded:
    """A stream's read loop ended; tagged with its stream so the end of a replaced one is ignored."""

    stream: MarketStream
    error: ExchangeStreamError


class StreamKeeper:
    """Keeps one live stream of the pair open and its messages flowing into ``events``."""

    def __init__(
        self, ctx: PairContext, exchange: BinanceExchange, budget: Budget, rest: BudgetedRest
    ) -> None:
        self.ctx = ctx
        self.exchange = exchange
        self.budget = budget
        self.rest = rest
        self.events: asyncio.Queue[KlineUpdate | BookQuote | StreamEnded] = asyncio.Queue()
        self.failures = 0  # consecutive stream failures since the last closed candle
        self._stream: MarketStream | None = None
        self._reader: asyncio.Task | None = None
        self._opened_at = 0  # exchange time the current stream opened at

    async def open(self) -> None:
        self._stream, self._reader, self._opened_at = await self._connect()

    async def close(self) -> None:
        assert self._stream is not None and self._reader is not None
        self._reader.cancel()
        await _close_quietly(self._stream)

    async def renew_if_due(self) -> None:
        """Ahead of the exchange's cutoff: the new stream first, then close the old."""
        assert self.ctx.clock is not None
        lifetime = self.ctx.config.connection_lifetime_ms
        renew_at = lifetime - min(RENEW_BEFORE_CUTOFF_MS, lifetime // 10)
        if self.ctx.clock.now_ms() - self._opened_at >= renew_at:
            log.info("renewing stream before the 24 h cutoff", extra=self.ctx.extra)
            fresh = await self._connect()
            await self.close()
            self._stream, self._reader, self._opened_at = fresh
            self.ctx.counters.renewals += 1

    async def next_event(
        self, stopper: asyncio.Task, timeout_s: float
    ) -> KlineUpdate | BookQuote | StreamEnded | None:
        """The next message, or None after ``timeout_s`` of quiet or once ``stopper`` is done."""
        getter = asyncio.create_task(self.events.get())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in done:
            getter.cancel()
            return None
        event = getter.result()
        if isinstance(event, KlineUpdate) and event.closed and event.symbol == self.ctx.symbol:
            self.failures = 0  # the stream works again: the back-off starts afresh
        return event

    async def replace(self, ended: StreamEnded) -> bool:
        """Reconnect after the current stream ended; False for the end of one already replaced."""
        if ended.stream is not self._stream:
            return False
        self.failures += 1
        self.ctx.counters.reconnects += 1
        self.ctx.last_error = f"stream: {ended.error}"
        log.warning("stream failed (%s); reconnecting", ended.error, extra=self.ctx.extra)
        await self.close()
        await asyncio.sleep(backoff_s(min(self.failures, MAX_BACKOFF_ATTEMPT)))
        self._stream, self._reader, self._opened_at = await self._connect()
        return True

    def _stall_timeout_s(self) -> float:
        assert self.ctx.clock is not None
        return max(MIN_STALL_WALL_S, self.ctx.clock.wall_seconds(STALL_INTERVALS * MINUTE_MS))

    async def _connect(self) -> tuple[MarketStream, asyncio.Task, int]:
        while (wait := await self.budget.reserve_connection()) > 0:
            await asyncio.sleep(wait)
        symbol = self.ctx.symbol.lower()
        stream = self.exchange.stream([f"{symbol}@kline_1m", f"{symbol}@bookTicker"], self._stall_timeout_s())
        await self.rest.call(EXCHANGE_INFO_WEIGHT, stream.__aenter__)
        opened_at = self.ctx.clock.now_ms() if self.ctx.clock else 0
        reader = asyncio.create_task(self._read(stream))
        return stream, reader, opened_at

    async def _read(self, stream: MarketStream) -> None:
        try:
            async for update in stream:
                self.events.put_nowait(update)
        except ExchangeStreamError as exc:
            self.events.put_nowait(StreamEnded(stream, exc))
        except Exception as exc:  # anything else that kills the read loop ends this stream too
            self.events.put_nowait(StreamEnded(stream, ExchangeStreamError(f"{type(exc).__name__}: {exc}")))


async def _close_quietly(stream: MarketStream) -> None:
    try:
        await asyncio.wait_for(stream.__aexit__(None, None, None), timeout=5)
    except Exception as exc:  # a dying socket may fail to close; it is abandoned either way
        log.debug("closing stream: %s", exc)
