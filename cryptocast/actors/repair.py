"""Missing minutes fetched over REST, exchange holes told apart from them, socket candles checked.

Minutes go missing before a closed socket candle (a dropped or stalled stream, a reconnect, a
database outage), while the stream was away, or out of a full hold (the ledger lists those as an
ingestion gap until they are stored: repaired on recovery and at every start). Each is fetched over
REST and stored as a repair. Minutes REST has no candle for, although it has a later one, are
exchange holes: ledgered and never asked for again. Every ``reconcile_every`` closed socket
candles, one REST call checks them; REST wins on any difference.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import replace

from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.heldwrites import HeldWrites
from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.actors.rest_budgeted import PAGE, BudgetedRest
from cryptocast.records import MINUTE_MS, Candle, Provenance, ms_to_dt
from cryptocast.sql.database import Database
from cryptocast.sql.ledger import Span, ingestion_gaps, missing_spans, record_holes, resolve_gap

log = logging.getLogger(INGEST_LOGGER)


class Repair:
    """Finds the pair's missing minutes and brings them back over REST."""

    def __init__(self, ctx: PairContext, db: Database, rest: BudgetedRest, held: HeldWrites) -> None:
        self.ctx = ctx
        self.db = db
        self.rest = rest
        self.held = held
        self._unchecked: list[Candle] = []  # closed socket candles awaiting the next reconciliation
        self._reconciled = False  # the first check has happened (its count is pair-dependent)

    async def fill(self, start: int, end: int, bracketed: bool) -> None:
        """Fetch ``[start, end]`` over REST. Missing minutes followed by a later candle are exchange holes."""
        fetched: list[Candle] = []
        cursor = start
        while cursor <= end:
            page = await self.rest.page(cursor, end)
            fetched.extend(page)
            if len(page) < PAGE:
                break
            cursor = page[-1].open_time + MINUTE_MS
        candles = [replace(c, provenance=Provenance.REPAIR) for c in fetched]
        newest_known = end if bracketed else (candles[-1].open_time if candles else start - MINUTE_MS)
        if candles:
            self.ctx.counters.repaired += len(candles)
            log.info("repaired %d missed minutes over REST", len(candles), extra=self.ctx.extra)
            await self.held.store(candles)
        # after the candles: a hole found inside a ledgered gap takes the gap's row
        await self.note_holes(missing_spans((c.open_time for c in candles), start, newest_known))

    async def to_now(self) -> None:
        """After a reconnect: fetch what closed while the stream was away."""
        assert self.ctx.clock is not None
        last_seen = self.held.last_seen
        if last_seen is None:
            return
        closed_until = self.ctx.clock.now_ms() // MINUTE_MS * MINUTE_MS - MINUTE_MS
        if closed_until > last_seen:
            await self.fill(last_seen + MINUTE_MS, closed_until, bracketed=False)

    async def gaps(self) -> None:
        """Repair the ingestion gaps the ledger lists; each leaves it once its candles are stored."""
        self.held.gaps_open = False  # the repair's own writes must not start another
        try:
            for span in await ingestion_gaps(self.db, self.ctx.sid):
                log.info(
                    "repairing the ingestion gap %s+%dm",
                    f"{ms_to_dt(span.start):%Y-%m-%d %H:%M}",
                    span.minutes,
                    extra=self.ctx.extra,
                )
                await self.fill(span.start, span.end, bracketed=True)
                if self.held.db_down:  # the candles are held: the gap stays listed until they land
                    self.held.gaps_open = True
                    return
                await resolve_gap(self.db, self.ctx.sid, span)
        except DB_ERRORS as exc:
            self.held.gaps_open = True
            self.held.hold(exc)

    async def note_holes(self, spans: list[Span]) -> None:
        if not spans:
            return
        self.ctx.counters.holes += sum(s.minutes for s in spans)
        log.info(
            "exchange has no candles for %d span(s): %s",
            len(spans),
            ", ".join(f"{ms_to_dt(s.start):%Y-%m-%d %H:%M}+{s.minutes}m" for s in spans),
            extra=self.ctx.extra,
        )
        try:
            await record_holes(self.db, self.ctx.sid, spans)
        except DB_ERRORS as exc:
            log.warning("could not record exchange holes: %s", exc, extra=self.ctx.extra)

    def note(self, candle: Candle) -> None:
        """A stored socket candle, to check against REST with the next reconciliation."""
        self._unchecked.append(candle)

    async def reconcile_if_due(self) -> None:
        """Every ``reconcile_every`` noted candles, check them against REST."""
        every = self.ctx.config.reconcile_every
        # The first check comes after a pair-dependent count, so pairs started together spread theirs.
        due = every if self._reconciled else 1 + zlib.crc32(self.ctx.symbol.encode()) % every
        if self._unchecked and len(self._unchecked) >= due:
            self._reconciled = True
            await self._reconcile_with_rest()

    async def _reconcile_with_rest(self) -> None:
        """One REST call checks the last closed socket candles; REST wins on any difference."""
        batch, self._unchecked = self._unchecked, []
        rest = {c.open_time: c for c in await self.rest.page(batch[0].open_time, batch[-1].open_time)}
        wrong = [rest[c.open_time] for c in batch if c.open_time in rest and _differs(c, rest[c.open_time])]
        if not wrong:
            return
        self.ctx.counters.reconciled_mismatches += len(wrong)
        log.warning(
            "socket and REST disagree on %d candle(s); keeping REST's", len(wrong), extra=self.ctx.extra
        )
        await self.held.replace([replace(c, provenance=Provenance.REPAIR) for c in wrong])


def _differs(a: Candle, b: Candle) -> bool:
    return (a.open, a.high, a.low, a.close, a.volume, a.trades) != (
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.trades,
    )
