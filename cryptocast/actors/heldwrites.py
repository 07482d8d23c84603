"""The pair's writes, held in memory while the database is down and written in order once it is back.

Every candle the pair stores passes through here, so nothing overtakes: while anything is held,
newer candles (and REST's corrections) queue behind it. The hold is bounded by ``buffer_limit``:
beyond it the oldest candles are dropped, and their span is ledgered as an ingestion gap before any
newer candle lands, so a crash cannot lose the record of them; the pair's repair then refetches the
gap over REST. Two watermarks follow the writes: the newest minute handed over (``last_seen``) and
the newest one the database confirmed (``last_stored``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.records import BookTop, Candle, CandleBlock
from cryptocast.sql.database import Database
from cryptocast.sql.ledger import INGESTION_GAP, Span, record_holes
from cryptocast.sql.rowcheck import WriteResult, check_quote
from cryptocast.sql.writer import CandleWriter

log = logging.getLogger(INGEST_LOGGER)


class HeldWrites:
    """Candles and quotes on their way to the database, held (bounded) while it is down."""

    def __init__(
        self,
        ctx: PairContext,
        db: Database,
        repair_gaps: Callable[[], Awaitable[None]],
        writer: CandleWriter | None = None,
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.writer = writer or CandleWriter(db)  # shared by a host's pairs: their live candles group
        self.repair_gaps = repair_gaps  # run once written, while the ledger lists ingestion gaps
        self.last_seen: int | None = None  # newest closed minute handed to the writer (or held)
        self.last_stored: int | None = None  # newest minute the database confirmed
        self.pending: deque[Candle] = deque()
        self.pending_book: deque[BookTop] = deque()
        self.db_down = False
        self.gaps_open = False  # the ledger lists ingestion gaps to repair (read at every start)
        self._dropped: Span | None = None  # candles dropped from a full hold, not yet in the ledger

    async def store(self, candles: list[Candle]) -> None:
        self.pending.extend(candles)
        self.last_seen = max(self.last_seen or 0, max(c.open_time for c in candles))
        await self.flush()

    async def store_block(self, block: CandleBlock) -> None:
        """The backfill's store: the block goes to the writer whole; only candles the database
        could not take are held one by one, like any others."""
        self.last_seen = max(self.last_seen or 0, int(block.open_time.max()))
        if not self.pending and not self.db_down:
            try:
                result = await self.writer.write(self.ctx.sid, block)
            except DB_ERRORS as exc:
                self.pending.extend(block.candles())
                self.hold(exc)
                return
            self._count(result)
            self.last_stored = max(self.last_stored or 0, int(block.open_time.max()))
            return
        self.pending.extend(block.candles())
        await self.flush()

    async def replace(self, fixed: list[Candle]) -> None:
        """REST's corrections of stored candles: written over them, or held behind the older ones."""
        if self.db_down:  # held behind the older candles (and a dropped span's ledger row)
            self.pending.extend(fixed)
            return
        try:
            await self.writer.replace(self.ctx.sid, fixed)
        except DB_ERRORS:
            self.pending.extend(fixed)

    def queue_book(self, top: BookTop) -> None:
        """A closed minute's top of book, written with the next flush."""
        self.pending_book.append(top)

    async def retry(self) -> None:
        """Write again what an outage held back."""
        if self.pending or self.db_down:
            await self.flush()

    def hold(self, exc: BaseException) -> None:
        """The database refused a write: keep the candles (bounded) until it is back."""
        if not self.db_down:
            log.error("database unavailable (%s): holding closed candles", exc, extra=self.ctx.extra)
        self.db_down = True
        self._trim()
        while len(self.pending_book) > self.ctx.config.buffer_limit:
            self.pending_book.popleft()
        self.ctx.counters.buffered = len(self.pending)

    def _trim(self) -> None:
        """While the database is down, hold at most ``buffer_limit`` candles; remember what was dropped."""
        counters, limit = self.ctx.counters, self.ctx.config.buffer_limit
        overflow = len(self.pending) - limit
        if overflow <= 0:
            return
        dropped = [self.pending.popleft().open_time for _ in range(overflow)]
        low, high = min(dropped), max(dropped)
        if self._dropped:
            low, high = min(low, self._dropped.start), max(high, self._dropped.end)
        self._dropped = Span(low, high)
        if not counters.dropped_from_buffer:
            log.error(
                "database down and buffer full (%d candles): dropping the oldest; REST repair will refetch them",
                limit,
                extra=self.ctx.extra,
            )
        counters.dropped_from_buffer += overflow

    async def flush(self) -> None:
        if not self.pending and not self.pending_book:
            return
        symbol_id, batch = self.ctx.sid, list(self.pending)
        try:
            if self._dropped:  # the ledger learns of the lost span before any newer candle lands
                await record_holes(self.db, symbol_id, [self._dropped], INGESTION_GAP)
                self._dropped, self.gaps_open = None, True
                self.ctx.counters.dropped_from_buffer = 0
            if batch:
                top = self._book_of(batch)
                self._count(await self.writer.write(symbol_id, batch, top))
                if top is not None:
                    self.pending_book.clear()  # stored with its candle
                for _ in batch:
                    self.pending.popleft()
                self.last_stored = max(self.last_stored or 0, max(c.open_time for c in batch))
            if self.pending_book:
                books = await self.writer.write_book(symbol_id, list(self.pending_book))
                self.ctx.counters.quotes_refused += len(books.rejected)
                self.pending_book.clear()
        except DB_ERRORS as exc:
            self.hold(exc)
            return
        if self.db_down:
            self.db_down = False
            log.info("database back: held candles written", extra=self.ctx.extra)
        if self.gaps_open:  # what fell out of the full buffer comes back over REST
            await self.repair_gaps()

    def _book_of(self, batch: list[Candle]) -> BookTop | None:
        """The live case, one candle and its minute's sane quote: written in one statement."""
        if len(batch) != 1 or len(self.pending_book) != 1:
            return None
        top = self.pending_book[0]
        return top if top.minute == batch[0].open_time and check_quote(top) is None else None

    def _count(self, result: WriteResult) -> None:
        self.ctx.counters.written += result.inserted
        self.ctx.counters.rejected += len(result.rejected)
