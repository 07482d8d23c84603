"""Everything one pair's ingestion does, as plain asyncio (the Ray actor in ``pair.py`` hosts it).

The order of work makes the seam between history and live data exact:

1. open the websocket streams (klines + book ticker) and start buffering their messages;
2. backfill over REST from the last stored minute up to the exchange's now, pipelined so the
   exchange and the database work at the same time;
3. then drain the buffered and live messages. A minute closed before the streams opened is in the
   REST history; one closed after is on the socket; the writer stores each minute exactly once.

Every closed socket candle is checked for continuity: a minute missing before it is repaired over
REST before the candle is stored. Candles dated after the exchange's now are refused wherever they
come from (``sanity.py``). The pair ingestor keeps this lifecycle and composes collaborators with
one job each: ``rest_budgeted.py`` (REST under the shared weight budget), ``streamkeeper.py`` (the
streams and their watchdogs), ``heldwrites.py`` (writes held through a database outage),
``backfill.py`` (history) and ``repair.py`` (missing minutes, exchange holes, reconciliation).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select, update

from cryptocast.actors.backfill import PROGRESS_EVERY_S, Backfill
from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.heldwrites import HeldWrites
from cryptocast.actors.paircontext import Counters, IngestConfig, PairContext
from cryptocast.actors.pairmetrics_flush import MetricsFlush
from cryptocast.actors.repair import Repair
from cryptocast.actors.rest_budgeted import KLINES_WEIGHT, PAGE, Budget, BudgetedRest
from cryptocast.actors.sanity import from_the_future
from cryptocast.actors.streamhub import Resumed, StreamHub
from cryptocast.actors.streamkeeper import Dropped, StreamKeeper, StreamSource
from cryptocast.exchange.binance import BinanceExchange, BookQuote, KlineUpdate
from cryptocast.exchange.exchangeclock import ExchangeClock
from cryptocast.records import MINUTE_MS, BookTop, Candle
from cryptocast.sql.database import Database
from cryptocast.sql.schema import price_history, symbols
from cryptocast.sql.writer import CandleWriter, WriteError

__all__ = ["KLINES_WEIGHT", "PAGE", "IngestConfig", "PairIngestor"]

log = logging.getLogger(__name__)

FIRST_REFINE_S = 1.0  # wall seconds from measuring the pair's own clock to its first refinement
CLOCK_REFINE_S = 30.0  # ... and the most between two later ones
HEARTBEAT_ROW_S = 10.0  # wall seconds between heartbeats written to the pair's row
# A closed candle's check against REST waits this long after the candle is stored, in exchange
# time: every pair of a host closes its minute at the same instant, and their candles reach the
# database soonest with nothing else on the event loop. The counts and the heartbeat row are written
# after a second of quiet or with the check, so not in the burst either.
FOLLOW_UP_MS = 15_000


class PairIngestor:
    """Backfill then stream one pair; safe to kill at any moment and start again."""

    def __init__(
        self,
        symbol: str,
        db: Database,
        exchange: BinanceExchange,
        budget: Budget,
        config: IngestConfig | None = None,
        on_status: Callable[[str], Awaitable[None]] | None = None,
        streams: StreamSource | None = None,
        clock: Callable[[PairContext], Awaitable[ExchangeClock]] | None = None,
        writer: CandleWriter | None = None,
    ) -> None:
        self.symbol = symbol.upper()
        self.db = db
        self.exchange = exchange
        self.budget = budget
        self.config = config or IngestConfig()
        self.ctx = PairContext(self.symbol, self.config)
        self.rest = BudgetedRest(self.ctx, exchange, budget)
        self.held = HeldWrites(self.ctx, db, repair_gaps=lambda: self.repair.gaps(), writer=writer)  # noqa: PLW0108 - self.repair is made next
        self.repair = Repair(self.ctx, db, self.rest, self.held)
        # Without a shared hub the pair gets a connection of its own (one pair, tests, tools).
        self._own_hub: StreamHub | None = None
        if streams is None:
            streams = self._own_hub = StreamHub(
                exchange, budget, connection_lifetime_ms=self.config.connection_lifetime_ms
            )
        self.streams = StreamKeeper(self.ctx, streams)
        self.backfill = Backfill(self.ctx, self.rest, self.held, self.repair, self._report_progress)
        self.metrics = MetricsFlush(self.ctx, db, self.held)
        self._shared_clock = clock  # kept up to date by its owner; without one the pair keeps its own
        self._refined = time.monotonic()
        self._refine_every = FIRST_REFINE_S
        self._heartbeat_row = 0.0  # when the pair's row last heard of a heartbeat
        self._follow_up_at: float | None = None  # when the last closed candle's follow-up is due
        self.state = "starting"
        self.heartbeat = time.time()
        self._quote: BookQuote | None = None  # the newest quote, stored with the next closed minute
        self._on_status = on_status

    @property
    def counters(self) -> Counters:
        return self.ctx.counters

    @property
    def last_stored(self) -> int | None:
        return self.held.last_stored

    @property
    def last_error(self) -> str | None:
        return self.ctx.last_error

    # --- entry point ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self._load()
        if self._shared_clock is not None:
            self.ctx.clock = await self._shared_clock(self.ctx)
        else:
            self.ctx.clock = await ExchangeClock(self.rest.server_time).measure()
        await self.streams.open()
        try:
            await self._set_status("backfilling")
            await self.backfill.run()
            await self.repair.gaps()
            await self._set_status("live")
            await self._live(stop)
        finally:
            await self.streams.close()
            if self._own_hub is not None:
                await self._own_hub.close()
            await self.held.flush()
            await self.metrics.flush()

    # --- state ------------------------------------------------------------------------------------
    async def _load(self) -> None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(symbols.c.id).where(symbols.c.symbol == self.symbol))).first()
            if row is None:
                raise WriteError(f"{self.symbol} is not a tracked pair: add it first")
            self.ctx.symbol_id = row.id
            newest = (
                await conn.execute(
                    select(func.max(price_history.c.open_time)).where(
                        price_history.c.symbol_id == self.ctx.symbol_id
                    )
                )
            ).scalar()
        self.held.last_stored = self.held.last_seen = int(newest.timestamp() * 1000) if newest else None

    async def _set_status(self, state: str) -> None:
        self.state = state
        await self._update_pair(status=state)
        if self._on_status:
            await self._on_status(state)

    async def _update_pair(self, **values: object) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(update(symbols).where(symbols.c.id == self.ctx.symbol_id).values(**values))
        except DB_ERRORS as exc:
            log.warning("could not update pair row: %s", exc, extra=self.ctx.extra)

    async def _report_progress(self) -> None:
        self.heartbeat = time.time()
        progress = self.backfill.progress
        await self._update_pair(
            backfill_done=progress.done,
            backfill_total=progress.total,
            backfill_eta_s=progress.eta_s,
            heartbeat_at=func.now(),
        )
        await self.metrics.flush_if_due()

    def status(self) -> dict:
        clock, last_stored, progress = self.ctx.clock, self.held.last_stored, self.backfill.progress
        return {
            "symbol": self.symbol,
            "state": self.state,
            "last_stored": last_stored,
            "last_seen": self.held.last_seen,
            "lag_ms": (clock.now_ms() - (last_stored + MINUTE_MS)) if clock and last_stored else None,
            "backfill": {
                "done": progress.done,
                "total": progress.total,
                "eta_s": progress.eta_s,
            },
            "buffered": len(self.held.pending),
            "db_down": self.held.db_down,
            "heartbeat": self.heartbeat,
            "counters": vars(self.ctx.counters).copy(),
            "last_error": self.ctx.last_error,
        }

    # --- live -------------------------------------------------------------------------------------
    async def _live(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                await self._refine_clock()
                event = await self.streams.next_event(stopper, self._quiet_s())
                if event is None:
                    await self._tick()
                elif isinstance(event, Resumed | Dropped):
                    await self.streams.recover(event)
                    await self.repair.to_now()
                elif isinstance(event, KlineUpdate):
                    if event.closed and event.symbol == self.symbol:
                        await self._on_closed(event.candle)
                elif event.symbol == self.symbol:
                    self._quote = event
        finally:
            stopper.cancel()

    async def _refine_clock(self) -> None:
        """The pair's own clock, refined now and then (``exchangeclock.py``); a shared one is its owner's."""
        if self._shared_clock is None and time.monotonic() - self._refined > self._refine_every:
            self._refined = time.monotonic()
            self._refine_every = min(2 * self._refine_every, CLOCK_REFINE_S)  # the rate's span doubles
            assert self.ctx.clock is not None
            await self.ctx.clock.refine()

    def _quiet_s(self) -> float:
        """How long to wait for the next event: a second, or until the follow-up is due if sooner."""
        if self._follow_up_at is None:
            return PROGRESS_EVERY_S
        return min(PROGRESS_EVERY_S, max(0.0, self._follow_up_at - time.monotonic()))

    async def _tick(self) -> None:
        """After a second of quiet, and when a closed candle's follow-up is due: heartbeat, retry
        writes held back by a database outage, store the counts; and the follow-up, the check of
        socket candles against REST, when it is due.

        The pair's row hears of the heartbeat every ``HEARTBEAT_ROW_S`` only: with every Binance
        pair tracked, a row update per pair per second would be 1,600 updates a second.
        """
        self.heartbeat = time.time()
        await self.held.retry()
        if self._follow_up_at is not None and time.monotonic() >= self._follow_up_at:
            self._follow_up_at = None
            await self.repair.reconcile_if_due()
        if self.heartbeat - self._heartbeat_row >= HEARTBEAT_ROW_S:
            self._heartbeat_row = self.heartbeat
            await self._update_pair(heartbeat_at=func.now())
        await self.metrics.flush_if_due()

    async def _on_closed(self, candle: Candle) -> None:
        self.heartbeat = time.time()
        assert self.ctx.clock is not None
        if from_the_future(candle.open_time, now := self.ctx.clock.now_ms()):
            self.ctx.refuse_future([candle.open_time], now, "the socket")
            return
        last_seen = self.held.last_seen
        if last_seen is not None and candle.open_time <= last_seen:
            return  # already stored (the backfill or an overlapping stream had it)
        if last_seen is not None and candle.open_time > last_seen + MINUTE_MS:
            await self.repair.fill(last_seen + MINUTE_MS, candle.open_time - MINUTE_MS, bracketed=True)
        quote = self._quote
        if quote is not None:
            self.held.queue_book(
                BookTop(
                    candle.open_time,
                    quote.bid_price,
                    quote.bid_qty,
                    quote.ask_price,
                    quote.ask_qty,
                    quote.derived,
                )
            )
            self._quote = None
        await self.held.store([candle])
        self.repair.note(candle)
        self._follow_up_at = time.monotonic() + self.ctx.clock.wall_seconds(FOLLOW_UP_MS)
