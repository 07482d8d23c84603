"""One websocket connection for many pairs: the kline and book-ticker streams of up to 500 pairs.

Binance allows 1,024 streams on a connection and 300 new connections per 5 minutes per IP, so one
connection per pair would take 25 minutes to reopen 1,600 pairs after a network blip. The hub
holds one combined connection and fans what arrives out to each pair's sink: a closed candle goes
out at once, with the newest book quote seen before it (the only quote a pair stores); unclosed
candle updates and older quotes stop here.

A stream is watched, not believed: silence longer than two candle intervals, python-binance's queue
overflow, a server disconnect or anything else that ends its read loop closes it, and a fresh
connection opens after a capped back-off and subscribes every pair again. Each sink then gets
:class:`Resumed`, and its pair repairs over REST what closed meanwhile. Before the exchange's 24 h
cutoff the replacement opens first and the old connection closes after, so a planned renewal loses
no minute; the overlap is deduplicated by the pairs. New connections are paid for from the budget.
A few streams are named in the connection's URL and the rest subscribed by message, a batch at a
time within the exchange's limit on incoming messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cryptocast.actors.paircontext import CONNECTION_LIFETIME_MS
from cryptocast.actors.rest_budgeted import TIME_WEIGHT, Budget, backoff_s, budgeted
from cryptocast.exchange.binance import (
    BinanceExchange,
    BookQuote,
    ExchangeStreamError,
    KlineUpdate,
    MarketStream,
    StreamInterrupted,
)
from cryptocast.exchange.exchangeclock import ExchangeClock, server_time
from cryptocast.records import MINUTE_MS

log = logging.getLogger(__name__)

PAIRS_PER_CONNECTION = 500  # 2 streams each: within Binance's 1,024 streams per connection
URL_STREAMS = 40  # streams named in the connection URL (URLs stay short); the rest by SUBSCRIBE
SUBSCRIBE_BATCH = 200  # streams per SUBSCRIBE message
SUBSCRIBE_GAP_S = 0.25  # Binance takes 5 incoming messages a second per connection
STALL_INTERVALS = 2  # candle intervals of silence before a connection counts as stalled
MIN_STALL_WALL_S = 3.0  # floor in wall seconds: a busy 2-core machine pauses longer than 0.2 s
RENEW_BEFORE_CUTOFF_MS = 30 * 60_000  # open the replacement this long before the exchange's cutoff
EXCHANGE_INFO_WEIGHT = 20  # opening a connection reads exchangeInfo for the derived-field markers
MAX_BACKOFF_ATTEMPT = 6  # consecutive failures beyond this wait no longer
CLOCK_REFINE_S = 30.0  # wall seconds between refinements of the exchange clock's rate


@dataclass(frozen=True, slots=True)
class Resumed:
    """The connection was replaced after a failure: minutes may have closed unseen; repair them."""

    reason: str


@dataclass(frozen=True, slots=True)
class Renewed:
    """The connection was renewed as planned, before the exchange's cutoff: nothing was missed."""


Event = KlineUpdate | BookQuote | Resumed | Renewed
Sink = Callable[[str, list[Event]], Awaitable[None]]  # (symbol, events) -> delivered


def stream_names(symbol: str) -> list[str]:
    s = symbol.lower()
    return [f"{s}@kline_1m", f"{s}@bookTicker"]


class HubFull(Exception):
    """The connection already carries ``PAIRS_PER_CONNECTION`` pairs."""


@dataclass
class HubCounters:
    connections_opened: int = 0
    failures: int = 0
    renewals: int = 0
    delivered: int = 0  # closed candles handed to pairs


@dataclass
class _Connection:
    stream: MarketStream
    reader: asyncio.Task
    opened_at: int  # exchange time


@dataclass
class StreamHub:
    """The streams of up to ``PAIRS_PER_CONNECTION`` pairs on one connection, fanned out to sinks."""

    exchange: BinanceExchange
    budget: Budget
    connection_lifetime_ms: int = CONNECTION_LIFETIME_MS
    counters: HubCounters = field(default_factory=HubCounters)
    sinks: dict[str, Sink] = field(default_factory=dict)
    clock: ExchangeClock | None = None
    last_error: str | None = None
    _quotes: dict[str, BookQuote] = field(default_factory=dict)
    _live: _Connection | None = None
    _changed: asyncio.Lock = field(default_factory=asyncio.Lock)
    _failures: int = 0
    _keeper: asyncio.Task | None = None
    _failed: asyncio.Queue[tuple[MarketStream, ExchangeStreamError]] = field(default_factory=asyncio.Queue)
    _deliveries: set[asyncio.Task] = field(default_factory=set)  # held until done (asyncio keeps weak refs)
    _pending: dict[str, tuple[Sink, asyncio.Future[None]]] = field(default_factory=dict)  # to subscribe
    _subscriber: asyncio.Task | None = None

    # --- subscriptions ------------------------------------------------------------------------------
    async def add(self, symbol: str, sink: Sink) -> None:
        """Carry ``symbol``'s streams to ``sink``; returns once the exchange streams them to us.

        Pairs added while a connection is open are subscribed in batches, one message per
        ``SUBSCRIBE_GAP_S`` at most, so that many pairs arriving at once stay within the exchange's
        limit on incoming messages.
        """
        symbol = symbol.upper()
        async with self._changed:
            if symbol in self.sinks:
                self.sinks[symbol] = sink
                return
            if symbol not in self._pending and len(self.sinks) + len(self._pending) >= PAIRS_PER_CONNECTION:
                raise HubFull(f"this connection already carries {PAIRS_PER_CONNECTION} pairs")
            if self._keeper is None:
                clock = ExchangeClock(server_time(self.exchange))
                self.clock = await budgeted(self.budget, self.exchange, 2 * TIME_WEIGHT, clock.measure)
                self._keeper = asyncio.create_task(self._keep())
            if self._live is None:
                self.sinks[symbol] = sink
                try:
                    self._live = await self._connect()
                except BaseException:
                    self.sinks.pop(symbol, None)  # not carried: the caller may try again
                    raise
                return
            answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending[symbol] = (sink, answer)
            if self._subscriber is None or self._subscriber.done():
                self._subscriber = asyncio.create_task(self._subscribe_pending())
        await answer

    async def _subscribe_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(SUBSCRIBE_GAP_S)  # gathers the pairs added meanwhile into one message
            async with self._changed:
                batch = dict(list(self._pending.items())[: SUBSCRIBE_BATCH // 2])
                for symbol in batch:
                    del self._pending[symbol]
                try:
                    if self._live is None:
                        raise StreamInterrupted("no open connection to subscribe on")
                    await self._live.stream.subscribe([n for s in batch for n in stream_names(s)])
                except Exception as exc:
                    for _, answer in batch.values():
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for symbol, (sink, answer) in batch.items():
                    self.sinks[symbol] = sink
                    if not answer.done():
                        answer.set_result(None)

    async def remove(self, symbol: str) -> None:
        """Stop delivering ``symbol`` (its streams stay on the connection until the next renewal)."""
        self.sinks.pop(symbol.upper(), None)
        self._quotes.pop(symbol.upper(), None)

    async def close(self) -> None:
        for task in (self._subscriber, *self._deliveries):
            if task is not None:
                task.cancel()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._live is not None:
            await self._drop(self._live)
            self._live = None

    async def carries(self, symbol: str) -> bool:
        """Whether ``symbol``'s streams reach its sink now (a pair's watchdog asks when it hears nothing)."""
        return symbol.upper() in self.sinks and self._live is not None and not self._live.reader.done()

    def status(self) -> dict:
        return {
            "pairs": len(self.sinks),
            "open": self._live is not None,
            "counters": vars(self.counters).copy(),
            "last_error": self.last_error,
        }

    # --- the connection -------------------------------------------------------------------------------
    async def _reserve(self, weight: int) -> None:
        while (wait := await self.budget.reserve(weight)) > 0:
            await asyncio.sleep(wait)

    def _stall_timeout_s(self) -> float:
        assert self.clock is not None
        return max(MIN_STALL_WALL_S, self.clock.wall_seconds(STALL_INTERVALS * MINUTE_MS))

    async def _connect(self) -> _Connection:
        """A new connection carrying every pair's streams (paid for from the budget)."""
        while (wait := await self.budget.reserve_connection()) > 0:
            await asyncio.sleep(wait)
        await self._reserve(EXCHANGE_INFO_WEIGHT)
        names = [n for s in sorted(self.sinks) for n in stream_names(s)]
        stream = self.exchange.stream(names[:URL_STREAMS], self._stall_timeout_s())
        await stream.__aenter__()
        self.counters.connections_opened += 1
        assert self.clock is not None
        connection = _Connection(stream, asyncio.create_task(self._read(stream)), self.clock.now_ms())
        try:
            for i in range(URL_STREAMS, len(names), SUBSCRIBE_BATCH):
                await asyncio.sleep(SUBSCRIBE_GAP_S)
                await stream.subscribe(names[i : i + SUBSCRIBE_BATCH])
        except BaseException:
            await self._drop(connection)
            raise
        return connection

    async def _drop(self, connection: _Connection) -> None:
        connection.reader.cancel()
        try:
            await asyncio.wait_for(connection.stream.__aexit__(None, None, None), timeout=5)
        except Exception as exc:  # a dying socket may fail to close; it is abandoned either way
            log.debug("closing stream: %s", exc)

    async def _keep(self) -> None:
        """Replace failed connections and renew ahead of the exchange's cutoff."""
        while True:
            try:
                try:
                    stream, error = await asyncio.wait_for(self._failed.get(), timeout=1.0)
                except TimeoutError:
                    await self._renew_if_due()
                    await self._refine_clock()
                    continue
                if self._live is None or stream is not self._live.stream:
                    continue  # the end of a connection already replaced
                await self._replace(error)
            except Exception as exc:  # the keeper must outlive any one failure; the next second retries
                self.last_error = f"stream: {type(exc).__name__}: {exc}"
                log.warning("keeping the stream failed: %s", self.last_error)

    async def _replace(self, error: ExchangeStreamError) -> None:
        self._failures += 1
        self.counters.failures += 1
        self.last_error = f"stream: {error}"
        log.warning("stream of %d pairs failed (%s); reconnecting", len(self.sinks), error)
        async with self._changed:
            assert self._live is not None
            await self._drop(self._live)
            self._live = None
            if not self.sinks:
                return  # nobody left to carry: the next pair added opens a connection
            await asyncio.sleep(backoff_s(min(self._failures, MAX_BACKOFF_ATTEMPT)))
            while self._live is None:
                try:
                    self._live = await self._connect()
                except Exception as exc:  # refused, unreachable, 5xx: keep trying with back-off
                    self._failures += 1
                    self.last_error = f"stream: {exc}"
                    await asyncio.sleep(backoff_s(min(self._failures, MAX_BACKOFF_ATTEMPT)))
        resumed = Resumed(str(error))
        await asyncio.gather(*(self._deliver(symbol, [resumed]) for symbol in list(self.sinks)))

    async def _refine_clock(self) -> None:
        """Now and then one more ask of the exchange's time sharpens the rate (``exchangeclock.py``)."""
        assert self.clock is not None and self.clock.last is not None
        if time.time() - self.clock.last.wall_s > CLOCK_REFINE_S:
            await budgeted(self.budget, self.exchange, TIME_WEIGHT, self.clock.refine)

    async def _renew_if_due(self) -> None:
        assert self.clock is not None
        live = self._live
        lifetime = self.connection_lifetime_ms
        if live is None or self.clock.now_ms() - live.opened_at < lifetime - min(
            RENEW_BEFORE_CUTOFF_MS, lifetime // 10
        ):
            return
        log.info("renewing the stream of %d pairs before the 24 h cutoff", len(self.sinks))
        async with self._changed:
            self._live = await self._connect()
        await self._drop(live)
        self.counters.renewals += 1
        await asyncio.gather(*(self._deliver(symbol, [Renewed()]) for symbol in list(self.sinks)))

    async def _read(self, stream: MarketStream) -> None:
        try:
            async for update in stream:
                await self.route(update)
        except ExchangeStreamError as exc:
            self._failed.put_nowait((stream, exc))
        except Exception as exc:  # anything else that kills the read loop ends this connection too
            self._failed.put_nowait((stream, ExchangeStreamError(f"{type(exc).__name__}: {exc}")))

    async def route(self, update: KlineUpdate | BookQuote) -> None:
        """Hand one message of the connection to its pair: a closed candle with the quote before it."""
        if isinstance(update, BookQuote):
            if update.symbol in self.sinks:
                self._quotes[update.symbol] = update
            return
        if not update.closed or update.symbol not in self.sinks:
            return
        self._failures = 0  # the connection works again: the back-off starts afresh
        quote = self._quotes.pop(update.symbol, None)
        self.counters.delivered += 1
        # Not awaited here: one slow pair must not hold up the connection's other pairs.
        task = asyncio.create_task(self._deliver(update.symbol, [quote, update] if quote else [update]))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, symbol: str, events: list[Event]) -> None:
        sink = self.sinks.get(symbol)
        if sink is None:
            return
        try:
            await sink(symbol, events)
        except Exception as exc:  # a pair that cannot take its events is dropped; it resubscribes
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("dropping %s: its events could not be delivered (%s)", symbol, reason)
            if self.sinks.get(symbol) is sink:
                await self.remove(symbol)
