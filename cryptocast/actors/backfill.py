"""The pair's history over REST, from the last stored minute (or the lookback) to the exchange's now.

It runs after the streams are open and buffering, so a minute closed before they opened is here
and one closed after is on the socket. Pages are fetched ahead of the writer (``PREFETCH_PAGES``),
so the exchange and the database work at the same time, and several pages go to the database per
transaction. A minute missing between pages is an exchange hole, ledgered as such; resuming, so is
a missing first minute, while a new pair's history starts at the first candle the exchange has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cryptocast.actors.heldwrites import HeldWrites
from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.actors.repair import Repair
from cryptocast.actors.rest_budgeted import PAGE, BudgetedRest
from cryptocast.records import MINUTE_MS, CandleBlock
from cryptocast.sql.ledger import missing_spans

log = logging.getLogger(INGEST_LOGGER)

PREFETCH_PAGES = 8  # pages fetched ahead of the writer: the exchange keeps serving while we write
WRITE_BATCH = 5 * PAGE  # candles per backfill write: fewer transactions, same idempotent writes
PROGRESS_EVERY_S = 1.0


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


class Backfill:
    """Brings the pair's stored history up to the exchange's now, reporting its progress."""

    def __init__(
        self,
        ctx: PairContext,
        rest: BudgetedRest,
        held: HeldWrites,
        repair: Repair,
        report: Callable[[], Awaitable[None]],
    ) -> None:
        self.ctx = ctx
        self.rest = rest
        self.held = held
        self.repair = repair
        self.report = report  # at least every PROGRESS_EVERY_S while it runs, and once at the end
        self.progress = Progress()

    def _start(self, now: int) -> int:
        if self.held.last_stored is not None:
            return self.held.last_stored + MINUTE_MS
        if self.ctx.config.lookback_ms is None:
            return 0  # the exchange answers with the pair's first candle
        return (now - self.ctx.config.lookback_ms) // MINUTE_MS * MINUTE_MS

    async def run(self) -> None:
        assert self.ctx.clock is not None
        now = self.ctx.clock.now_ms()
        start = self._start(now)
        closed_until = now // MINUTE_MS * MINUTE_MS - MINUTE_MS  # newest minute that has closed
        first_page = await self.rest.block(start, backfill=True)
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
                page = await self.rest.block(int(page.open_time[-1]) + MINUTE_MS, backfill=True)
            await pages.put(None)

        fetcher = asyncio.create_task(fetch())
        # Resuming, a missing first minute is a hole; for a new pair the first candle returned is its start.
        expected = start if self.held.last_stored is not None else None
        last_progress = 0.0
        try:
            done = False
            while not done:
                batch, done = await _drain(pages, WRITE_BATCH)
                if len(batch):
                    times = batch.open_time
                    first, newest = int(times[0]) if expected is None else expected, int(times[-1])
                    if newest - first != (len(batch) - 1) * MINUTE_MS:  # else no hole
                        await self.repair.note_holes(missing_spans(times.tolist(), first, newest))
                    await self.held.store_block(batch)
                    expected = newest + MINUTE_MS
                    self.progress.done = min(self.progress.total, (expected - start) // MINUTE_MS)
                if time.time() - last_progress > PROGRESS_EVERY_S:
                    last_progress = time.time()
                    await self.report()
            await fetcher
        finally:
            fetcher.cancel()
        self.progress.done = self.progress.total
        await self.report()
        log.info("backfill done: %d minutes", self.progress.total, extra=self.ctx.extra)


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
