"""Everything one pair's ingestion does, as plain asyncio (the Ray actor in ``pair.py`` hosts it).

The order of work makes the seam between history and live data exact:

1. open the websocket streams (klines + book ticker) and start buffering their messages;
2. backfill over REST from the last stored minute up to the exchange's now, pipelined so the
   exchange and the database work at the same time;
3. then drain the buffered and live messages. A minute closed before the streams opened is in the
   REST history; one closed after is on the socket; the writer stores each minute exactly once.

Every closed socket candle is checked for continuity: a minute missing before it (a dropped or
stalled stream, a reconnect, a database outage) is repaired over REST. Minutes REST has no candle
for, although it has a later one, are exchange holes, recorded in the ledger and never asked for
again. Candles dated after the exchange's now are refused wherever they come from (``sanity.py``).
Streams are watched: silence longer than two candle intervals, python-binance's queue overflow, a
server disconnect or the approaching 24 h cutoff open a fresh connection (for the planned cutoff,
before the old one closes). While the database is down, closed candles are held; those a full
buffer drops are ledgered as an ingestion gap before any newer candle lands, so a crash cannot
lose the record of them, and ledgered gaps are repaired over REST on recovery and at every start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import asyncpg
from binance.exceptions import BinanceAPIException, BinanceRequestException
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

from cryptocast.actors.clock import ExchangeClock
from cryptocast.actors.sanity import describe_future, from_the_future, split_future
from cryptocast.exchange.binance import (
    BinanceExchange,
    BookQuote,
    ExchangeStreamError,
    KlineUpdate,
    MarketStream,
)
from cryptocast.records import MINUTE_MS, BookTop, Candle, CandleBlock, Provenance
from cryptocast.sql.database import Database, DatabaseUnavailable
from cryptocast.sql.ledger import (
    INGESTION_GAP,
    Span,
    ingestion_gaps,
    missing_spans,
    record_holes,
    resolve_gap,
)
from cryptocast.sql.schema import price_history, symbols
from cryptocast.sql.writer import CandleWriter, WriteError, WriteResult, ms_to_dt

log = logging.getLogger(__name__)

PAGE = 1000
PREFETCH_PAGES = 8  # pages fetched ahead of the writer: the exchange keeps serving while we write
WRITE_BATCH = 5 * PAGE  # candles per backfill write: fewer transactions, same idempotent writes
KLINES_WEIGHT = 2
TIME_WEIGHT = 1
STALL_INTERVALS = 2  # candle intervals of silence before a stream counts as stalled
MIN_STALL_WALL_S = 3.0  # floor in wall seconds: a busy 2-core machine pauses longer than 0.2 s
CONNECTION_LIFETIME_MS = 24 * 3_600_000
RENEW_BEFORE_CUTOFF_MS = 30 * 60_000  # open the replacement this long before the exchange's cutoff
RECONCILE_EVERY = 10  # closed socket candles per REST reconciliation call
BUFFER_LIMIT = 20_000  # closed candles held while the database is down
RETRY_BASE_S = 0.2
RETRY_CAP_S = 10.0
PROGRESS_EVERY_S = 1.0
DB_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, DatabaseUnavailable,
             OperationalError, DBAPIError, asyncpg.CannotConnectNowError)  # fmt: skip


class Budget:
    """What ingestion needs from the shared rate-limit budget (a Ray actor or a local object)."""

    async def reserve(self, weight: int) -> float: ...
    async def observe(self, used_weight: int | None) -> None: ...
    async def penalize(self, retry_after_s: float) -> None: ...
    async def reserve_connection(self) -> float: ...


@dataclass
class IngestConfig:
    lookback_ms: int | None = 30 * 24 * 3_600_000  # None: from the pair's first candle
    reconcile_every: int = RECONCILE_EVERY
    buffer_limit: int = BUFFER_LIMIT
    connection_lifetime_ms: int = CONNECTION_LIFETIME_MS  # the exchange's cutoff, on its clock


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)

    @property
    def eta_s(self) -> float | None:
        elapsed = time.time() - self.started
        if self.done <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.total - self.done) / (self.done / elapsed))


@dataclass
class Counters:
    rest_calls: int = 0
    written: int = 0
    repaired: int = 0
    reconciled_mismatches: int = 0
    reconnects: int = 0
    renewals: int = 0
    holes: int = 0
    buffered: int = 0
    dropped_from_buffer: int = 0
    future_rejected: int = 0  # closed candles dated after the exchange's now
    rejected: int = 0  # candles the writer refused as insane
    quotes_refused: int = 0


@dataclass(frozen=True)
class StreamEnded:
    """A stream's read loop ended; tagged with its stream so the end of a replaced one is ignored."""

    stream: MarketStream
    error: ExchangeStreamError


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
    ) -> None:
        self.symbol = symbol.upper()
        self.db = db
        self.exchange = exchange
        self.budget = budget
        self.config = config or IngestConfig()
        self.writer = CandleWriter(db)
        self.symbol_id: int | None = None
        self.clock: ExchangeClock | None = None
        self.last_seen: int | None = None  # newest closed minute handed to the writer (or its buffer)
        self.last_stored: int | None = None  # newest minute the database confirmed
        self.state = "starting"
        self.progress = Progress()
        self.counters = Counters()
        self.heartbeat = time.time()
        self.last_error: str | None = None
        self._pending: deque[Candle] = deque()
        self._pending_book: deque[BookTop] = deque()
        self._reconcile: list[Candle] = []
        self._quote: BookQuote | None = None
        self._events: asyncio.Queue[KlineUpdate | BookQuote | StreamEnded] = asyncio.Queue()
        self._on_status = on_status
        self._db_down = False
        self._dropped: Span | None = None  # candles dropped from a full buffer, not yet in the ledger
        self._gaps_open = False  # the ledger lists ingestion gaps to repair (read at every start)
        self._extra = {"pair": self.symbol}

    # --- entry point ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await self._load()
        self.clock = await ExchangeClock.measure(self._server_time)
        stream, reader = await self._open_stream()
        try:
            await self._set_status("backfilling")
            await self._backfill()
            await self._repair_gaps()
            await self._set_status("live")
            await self._live(stop, stream, reader)
        finally:
            reader.cancel()
            await _close_quietly(stream)
            await self._flush()

    # --- state ------------------------------------------------------------------------------------
    async def _load(self) -> None:
        async with self.db.connect() as conn:
            row = (await conn.execute(select(symbols.c.id).where(symbols.c.symbol == self.symbol))).first()
            if row is None:
                raise WriteError(f"{self.symbol} is not a tracked pair: add it first")
            self.symbol_id = row.id
            newest = (
                await conn.execute(
                    select(func.max(price_history.c.open_time)).where(
                        price_history.c.symbol_id == self.symbol_id
                    )
                )
            ).scalar()
        self.last_stored = self.last_seen = int(newest.timestamp() * 1000) if newest else None

    async def _set_status(self, state: str) -> None:
        self.state = state
        await self._update_pair(status=state)
        if self._on_status:
            await self._on_status(state)

    async def _update_pair(self, **values: object) -> None:
        try:
            async with self.db.begin() as conn:
                await conn.execute(update(symbols).where(symbols.c.id == self.symbol_id).values(**values))
        except DB_ERRORS as exc:
            log.warning("could not update pair row: %s", exc, extra=self._extra)

    def status(self) -> dict:
        return {
            "symbol": self.symbol,
            "state": self.state,
            "last_stored": self.last_stored,
            "last_seen": self.last_seen,
            "lag_ms": (self.clock.now_ms() - (self.last_stored + MINUTE_MS))
            if self.clock and self.last_stored
            else None,
            "backfill": {
                "done": self.progress.done,
                "total": self.progress.total,
                "eta_s": self.progress.eta_s,
            },
            "buffered": len(self._pending),
            "db_down": self._db_down,
            "heartbeat": self.heartbeat,
            "counters": vars(self.counters).copy(),
            "last_error": self.last_error,
        }

    # --- REST under the shared budget ------------------------------------------------------------
    async def _rest(self, weight: int, call: Callable[[], Awaitable]) -> object:
        attempt = 0
        while True:
            wait = await self.budget.reserve(weight)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                self.counters.rest_calls += 1
                result = await call()
                await self.budget.observe(self.exchange.used_weight)
                return result
            except BinanceAPIException as exc:
                if exc.status_code in (418, 429):
                    retry_after = float(exc.response.headers.get("Retry-After", 60)) if exc.response else 60.0
                    log.warning(
                        "rate limited (HTTP %s): waiting %.0f s",
                        exc.status_code,
                        retry_after,
                        extra=self._extra,
                    )
                    await self.budget.penalize(retry_after)
                    continue
                if exc.status_code < 500:
                    raise
                self.last_error = f"exchange HTTP {exc.status_code}: {exc.message}"
            except (TimeoutError, BinanceRequestException, OSError) as exc:
                self.last_error = f"exchange unreachable: {exc}"
            attempt += 1
            await asyncio.sleep(min(RETRY_CAP_S, RETRY_BASE_S * 2**attempt))

    async def _server_time(self) -> int:
        return int((await self._rest(TIME_WEIGHT, self.exchange.get_server_time))["serverTime"])

    async def _page(self, start_ms: int, end_ms: int | None = None) -> list[Candle]:
        return (await self._block(start_ms, end_ms)).candles()

    async def _block(self, start_ms: int, end_ms: int | None = None) -> CandleBlock:
        page = await self._rest(
            KLINES_WEIGHT, lambda: self.exchange.klines(self.symbol, start_ms, end_ms, PAGE)
        )
        assert self.clock is not None
        now = self.clock.now_ms()
        block, future = split_future(page.block, now)  # sorted: nothing real comes after these
        if future:
            self._refuse_future(future, now, "REST")
        return block

    def _refuse_future(self, open_times: list[int], now: int, source: str) -> None:
        self.counters.future_rejected += len(open_times)
        log.warning("refused %s from %s", describe_future(open_times, now), source, extra=self._extra)

    # --- backfill -------------------------------------------------------------------------------
    def _backfill_start(self, now: int) -> int:
        if self.last_stored is not None:
            return self.last_stored + MINUTE_MS
        if self.config.lookback_ms is None:
            return 0  # the exchange answers with the pair's first candle
        return (now - self.config.lookback_ms) // MINUTE_MS * MINUTE_MS

    async def _backfill(self) -> None:
        assert self.clock is not None
        now = self.clock.now_ms()
        start = self._backfill_start(now)
        closed_until = now // MINUTE_MS * MINUTE_MS - MINUTE_MS  # newest minute that has closed
        first_page = await self._block(start)
        if start == 0 and len(first_page):  # a new pair from its first candle: the total counts from there
            start = int(first_page.open_time[0])
        self.progress = Progress(total=max(0, (closed_until - start) // MINUTE_MS + 1))
        pages: asyncio.Queue[CandleBlock | None] = asyncio.Queue(maxsize=PREFETCH_PAGES)

        async def fetch() -> None:
            page = first_page
            while True:
                await pages.put(page)
                if len(page) < PAGE:
                    break
                page = await self._block(int(page.open_time[-1]) + MINUTE_MS)
            await pages.put(None)

        fetcher = asyncio.create_task(fetch())
        # Resuming, a missing first minute is a hole; for a new pair the first candle returned is its start.
        expected = start if self.last_stored is not None else None
        last_progress = 0.0
        try:
            done = False
            while not done:
                batch, done = await _drain(pages, WRITE_BATCH)
                if len(batch):
                    times = batch.open_time
                    first, newest = int(times[0]) if expected is None else expected, int(times[-1])
                    if newest - first != (len(batch) - 1) * MINUTE_MS:  # else no hole
                        await self._note_holes(missing_spans(times.tolist(), first, newest))
                    await self._store_block(batch)
                    expected = newest + MINUTE_MS
                    self.progress.done = min(self.progress.total, (expected - start) // MINUTE_MS)
                if time.time() - last_progress > PROGRESS_EVERY_S:
                    last_progress = time.time()
                    await self._report_progress()
            await fetcher
        finally:
            fetcher.cancel()
        self.progress.done = self.progress.total
        await self._report_progress()
        log.info("backfill done: %d minutes", self.progress.total, extra=self._extra)

    async def _report_progress(self) -> None:
        self.heartbeat = time.time()
        await self._update_pair(
            backfill_done=self.progress.done,
            backfill_total=self.progress.total,
            backfill_eta_s=self.progress.eta_s,
            heartbeat_at=func.now(),
        )

    # --- streams ----------------------------------------------------------------------------------
    def _stall_timeout_s(self) -> float:
        assert self.clock is not None
        return max(MIN_STALL_WALL_S, self.clock.wall_seconds(STALL_INTERVALS * MINUTE_MS))

    async def _open_stream(self) -> tuple[MarketStream, asyncio.Task]:
        while (wait := await self.budget.reserve_connection()) > 0:
            await asyncio.sleep(wait)
        stream = self.exchange.stream(
            [f"{self.symbol.lower()}@kline_1m", f"{self.symbol.lower()}@bookTicker"], self._stall_timeout_s()
        )
        await self._rest(20, lambda: stream.__aenter__())  # exchangeInfo for the derived-field markers
        opened_at = self.clock.now_ms() if self.clock else 0
        reader = asyncio.create_task(self._read(stream))
        reader.opened_at = opened_at  # type: ignore[attr-defined]
        return stream, reader

    async def _read(self, stream: MarketStream) -> None:
        try:
            async for update in stream:
                self._events.put_nowait(update)
        except ExchangeStreamError as exc:
            self._events.put_nowait(StreamEnded(stream, exc))
        except Exception as exc:  # noqa: BLE001 - anything else that kills the read loop ends this stream
            self._events.put_nowait(StreamEnded(stream, ExchangeStreamError(f"{type(exc).__name__}: {exc}")))

    async def _live(self, stop: asyncio.Event, stream: MarketStream, reader: asyncio.Task) -> None:
        assert self.clock is not None
        failures = 0
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                lifetime = self.config.connection_lifetime_ms
                renew_at = lifetime - min(RENEW_BEFORE_CUTOFF_MS, lifetime // 10)
                if self.clock.now_ms() - reader.opened_at >= renew_at:  # type: ignore[attr-defined]
                    log.info("renewing stream before the 24 h cutoff", extra=self._extra)
                    (
                        new_stream,
                        new_reader,
                    ) = await self._open_stream()  # the new one first, then close the old
                    reader.cancel()
                    await _close_quietly(stream)
                    stream, reader = new_stream, new_reader
                    self.counters.renewals += 1
                getter = asyncio.create_task(self._events.get())
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=PROGRESS_EVERY_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    await self._tick()
                    continue
                event = getter.result()
                if isinstance(event, StreamEnded):
                    if event.stream is not stream:
                        continue  # the end of a stream already replaced by a planned renewal
                    failures += 1
                    self.counters.reconnects += 1
                    self.last_error = f"stream: {event.error}"
                    log.warning("stream failed (%s); reconnecting", event.error, extra=self._extra)
                    reader.cancel()
                    await _close_quietly(stream)
                    await asyncio.sleep(min(RETRY_CAP_S, RETRY_BASE_S * 2 ** min(failures, 6)))
                    stream, reader = await self._open_stream()
                    await self._repair_to_now()
                elif isinstance(event, KlineUpdate):
                    if event.closed and event.symbol == self.symbol:
                        failures = 0
                        await self._on_closed(event.candle)
                elif event.symbol == self.symbol:
                    self._quote = event
        finally:
            stopper.cancel()
            reader.cancel()
            await _close_quietly(stream)

    async def _tick(self) -> None:
        """Once a second of quiet: heartbeat, and retry writes held back by a database outage."""
        self.heartbeat = time.time()
        if self._pending or self._db_down:
            await self._flush()
        await self._update_pair(heartbeat_at=func.now())

    # --- live candles -----------------------------------------------------------------------------
    async def _on_closed(self, candle: Candle) -> None:
        self.heartbeat = time.time()
        assert self.clock is not None
        if from_the_future(candle.open_time, now := self.clock.now_ms()):
            self._refuse_future([candle.open_time], now, "the socket")
            return
        if self.last_seen is not None and candle.open_time <= self.last_seen:
            return  # already stored (the backfill or an overlapping stream had it)
        if self.last_seen is not None and candle.open_time > self.last_seen + MINUTE_MS:
            await self._repair(self.last_seen + MINUTE_MS, candle.open_time - MINUTE_MS, bracketed=True)
        quote = self._quote
        if quote is not None:
            self._pending_book.append(
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
        await self._store([candle])
        self._reconcile.append(candle)
        if len(self._reconcile) >= self.config.reconcile_every:
            await self._reconcile_with_rest()

    async def _repair_to_now(self) -> None:
        """After a reconnect: fetch what closed while the stream was away."""
        assert self.clock is not None
        if self.last_seen is None:
            return
        closed_until = self.clock.now_ms() // MINUTE_MS * MINUTE_MS - MINUTE_MS
        if closed_until > self.last_seen:
            await self._repair(self.last_seen + MINUTE_MS, closed_until, bracketed=False)

    async def _repair(self, start: int, end: int, bracketed: bool) -> None:
        """Fetch ``[start, end]`` over REST. Missing minutes followed by a later candle are exchange holes."""
        fetched: list[Candle] = []
        cursor = start
        while cursor <= end:
            page = await self._page(cursor, end)
            fetched.extend(page)
            if len(page) < PAGE:
                break
            cursor = page[-1].open_time + MINUTE_MS
        candles = [replace(c, provenance=Provenance.REPAIR) for c in fetched]
        newest_known = end if bracketed else (candles[-1].open_time if candles else start - MINUTE_MS)
        if candles:
            self.counters.repaired += len(candles)
            log.info("repaired %d missed minutes over REST", len(candles), extra=self._extra)
            await self._store(candles)
        # after the candles: a hole found inside a ledgered gap takes the gap's row
        await self._note_holes(missing_spans((c.open_time for c in candles), start, newest_known))

    async def _repair_gaps(self) -> None:
        """Repair the ingestion gaps the ledger lists; each leaves it once its candles are stored."""
        self._gaps_open = False  # the repair's own writes must not start another
        try:
            for span in await ingestion_gaps(self.db, self.symbol_id):
                log.info("repairing the ingestion gap %s+%dm", f"{ms_to_dt(span.start):%Y-%m-%d %H:%M}",
                         span.minutes, extra=self._extra)  # fmt: skip
                await self._repair(span.start, span.end, bracketed=True)
                if self._db_down:  # the candles are held: the gap stays listed until they land
                    self._gaps_open = True
                    return
                await resolve_gap(self.db, self.symbol_id, span)
        except DB_ERRORS as exc:
            self._gaps_open = True
            self._hold(exc)

    async def _note_holes(self, spans: list[Span]) -> None:
        if not spans:
            return
        self.counters.holes += sum(s.minutes for s in spans)
        log.info("exchange has no candles for %d span(s): %s", len(spans),
                 ", ".join(f"{ms_to_dt(s.start):%Y-%m-%d %H:%M}+{s.minutes}m" for s in spans), extra=self._extra)  # fmt: skip
        try:
            await record_holes(self.db, self.symbol_id, spans)
        except DB_ERRORS as exc:
            log.warning("could not record exchange holes: %s", exc, extra=self._extra)

    async def _reconcile_with_rest(self) -> None:
        """One REST call checks the last closed socket candles; REST wins on any difference."""
        batch, self._reconcile = self._reconcile, []
        rest = {c.open_time: c for c in await self._page(batch[0].open_time, batch[-1].open_time)}
        wrong = [rest[c.open_time] for c in batch if c.open_time in rest and _differs(c, rest[c.open_time])]
        if not wrong:
            return
        self.counters.reconciled_mismatches += len(wrong)
        log.warning("socket and REST disagree on %d candle(s); keeping REST's", len(wrong), extra=self._extra)
        fixed = [replace(c, provenance=Provenance.REPAIR) for c in wrong]
        if self._db_down:  # held behind the older candles (and a dropped span's ledger row)
            self._pending.extend(fixed)
            return
        try:
            await self.writer.replace(self.symbol_id, fixed)
        except DB_ERRORS:
            self._pending.extend(fixed)

    # --- writes that survive a database outage ------------------------------------------------------
    async def _store(self, candles: list[Candle]) -> None:
        self._pending.extend(candles)
        self.last_seen = max(self.last_seen or 0, max(c.open_time for c in candles))
        await self._flush()

    async def _store_block(self, block: CandleBlock) -> None:
        """The backfill's store: the block goes to the writer whole; only candles the database
        could not take are held one by one, like any others."""
        self.last_seen = max(self.last_seen or 0, int(block.open_time.max()))
        if not self._pending and not self._db_down:
            try:
                result = await self.writer.write(self.symbol_id, block)
            except DB_ERRORS as exc:
                self._pending.extend(block.candles())
                self._hold(exc)
                return
            self._count(result)
            self.last_stored = max(self.last_stored or 0, int(block.open_time.max()))
            return
        self._pending.extend(block.candles())
        await self._flush()

    def _hold(self, exc: BaseException) -> None:
        """The database refused a write: keep the candles (bounded) until it is back."""
        if not self._db_down:
            log.error("database unavailable (%s): holding closed candles", exc, extra=self._extra)
        self._db_down = True
        self._trim()
        while len(self._pending_book) > self.config.buffer_limit:
            self._pending_book.popleft()
        self.counters.buffered = len(self._pending)

    def _trim(self) -> None:
        """While the database is down, hold at most ``buffer_limit`` candles; remember what was dropped."""
        overflow = len(self._pending) - self.config.buffer_limit
        if overflow <= 0:
            return
        dropped = [self._pending.popleft().open_time for _ in range(overflow)]
        low, high = min(dropped), max(dropped)
        if self._dropped:
            low, high = min(low, self._dropped.start), max(high, self._dropped.end)
        self._dropped = Span(low, high)
        if not self.counters.dropped_from_buffer:
            log.error(
                "database down and buffer full (%d candles): dropping the oldest; REST repair will refetch them",
                self.config.buffer_limit, extra=self._extra,
            )  # fmt: skip
        self.counters.dropped_from_buffer += overflow

    async def _flush(self) -> None:
        if not self._pending and not self._pending_book:
            return
        batch = list(self._pending)
        try:
            if self._dropped:  # the ledger learns of the lost span before any newer candle lands
                await record_holes(self.db, self.symbol_id, [self._dropped], INGESTION_GAP)
                self._dropped, self._gaps_open = None, True
                self.counters.dropped_from_buffer = 0
            if batch:
                self._count(await self.writer.write(self.symbol_id, batch))
                for _ in batch:
                    self._pending.popleft()
                self.last_stored = max(self.last_stored or 0, max(c.open_time for c in batch))
            if self._pending_book:
                books = await self.writer.write_book(self.symbol_id, list(self._pending_book))
                self.counters.quotes_refused += len(books.rejected)
                self._pending_book.clear()
        except DB_ERRORS as exc:
            self._hold(exc)
            return
        if self._db_down:
            self._db_down = False
            log.info("database back: held candles written", extra=self._extra)
        if self._gaps_open:  # what fell out of the full buffer comes back over REST
            await self._repair_gaps()

    def _count(self, result: WriteResult) -> None:
        self.counters.written += result.inserted
        self.counters.rejected += len(result.rejected)


async def _drain(pages: asyncio.Queue[CandleBlock | None], limit: int) -> tuple[CandleBlock, bool]:
    """Wait for one page, then take the pages already fetched, up to ``limit`` candles, as one batch.

    Returns the batch and whether the fetcher has finished. One writer call per batch rather than
    per page: the database's per-transaction cost is paid once for several pages.
    """
    page = await pages.get()
    if page is None:
        return CandleBlock.from_candles([]), True
    batch, size = [page], len(page)
    done = False
    while size < limit and not pages.empty():
        page = pages.get_nowait()
        if page is None:
            done = True
            break
        batch.append(page)
        size += len(page)
    return CandleBlock.concat(batch), done


def _differs(a: Candle, b: Candle) -> bool:
    return (a.open, a.high, a.low, a.close, a.volume, a.trades) != (
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.trades,
    )


async def _close_quietly(stream: MarketStream) -> None:
    try:
        await asyncio.wait_for(stream.__aexit__(None, None, None), timeout=5)
    except Exception as exc:  # noqa: BLE001 - a dying socket may fail to close; it is abandoned either way
        log.debug("closing stream: %s", exc)
