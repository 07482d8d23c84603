"""The pair's ingestion counts, added to ``pair_metrics`` every few seconds for ``GET /metrics``.

The counters live in the actor (``paircontext.Counters``) and start at zero with every actor; what
is written is only what they gained since the last write that succeeded, so the stored totals
survive restarts and never go backwards. A write that fails is retried with the next one, and
nothing is lost; while the held writes wait out a database outage, so do the counts (the held
writes' retries find the database back first). A crash loses at most ``FLUSH_EVERY_S`` of counts.
"""

from __future__ import annotations

import logging
import random
import time

from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.heldwrites import HeldWrites
from cryptocast.actors.paircontext import INGEST_LOGGER, Counters, PairContext
from cryptocast.sql import pairmetrics
from cryptocast.sql.database import Database

log = logging.getLogger(INGEST_LOGGER)

FLUSH_EVERY_S = 5.0
# pair_metrics name -> the Counters field it adds up
EXPORTED = {
    "ingest_candles_stored": "written",
    "ingest_candles_repaired": "repaired",
    "ingest_exchange_hole_candles": "holes",
    "ingest_ws_reconnects": "reconnects",
    "ingest_rest_429_responses": "throttled",
    "ingest_rest_418_responses": "banned",
}


class MetricsFlush:
    """Adds the counters' gains since the last successful write to the pair's stored totals."""

    def __init__(self, ctx: PairContext, db: Database, held: HeldWrites) -> None:
        self.ctx = ctx
        self.db = db
        self.held = held  # while it holds candles for a database outage, counts wait too
        self.flushed = Counters()  # what the stored totals already hold of this actor's counts
        # A random phase: the pairs of a host, started together, do not all write in the same second.
        self.last_flush = time.monotonic() - random.uniform(0, FLUSH_EVERY_S)

    async def flush_if_due(self) -> None:
        if time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            await self.flush()

    async def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.ctx.symbol_id is None or self.held.db_down:
            return
        now = Counters(**vars(self.ctx.counters))
        gains = {name: getattr(now, f) - getattr(self.flushed, f) for name, f in EXPORTED.items()}
        if not any(gains.values()):
            return
        try:
            await pairmetrics.add(self.db, self.ctx.symbol_id, gains)
        except DB_ERRORS as exc:
            log.debug("ingestion counts not written yet: %s", exc, extra=self.ctx.extra)
            return
        self.flushed = now
