"""Retention for the tables that grow without bound besides candles (default: keep everything).

Candles are never pruned: they are the record. Predictions and top of book may be, by age.

Ages are measured from the exchange clock (the newest stored minute), but never from later than the
wall clock: one candle stamped in the future would otherwise move "now" ahead and take every recent
row with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from cryptocast.sql.database import Database
from cryptocast.sql.schema import predictions, top_of_book


@dataclass(frozen=True, slots=True)
class Pruned:
    predictions: int
    top_of_book: int


async def prune(
    db: Database, now: datetime, predictions_days: int | None, top_of_book_days: int | None
) -> Pruned:
    """Delete rows older than the configured ages, measured from ``now`` (the exchange clock) or the
    wall clock, whichever is earlier. A negative age is refused: it would delete rows yet to come."""
    for table, days in (("predictions", predictions_days), ("top_of_book", top_of_book_days)):
        if days is not None and days < 0:
            raise ValueError(f"the retention of {table} must be 0 days or more, not {days}")
    now = min(now, datetime.now(UTC))
    counts = {"predictions": 0, "top_of_book": 0}
    async with db.begin() as conn:
        if predictions_days is not None:
            cutoff = now - timedelta(days=predictions_days)
            counts["predictions"] = (
                await conn.execute(delete(predictions).where(predictions.c.origin_time < cutoff))
            ).rowcount
        if top_of_book_days is not None:
            cutoff = now - timedelta(days=top_of_book_days)
            counts["top_of_book"] = (
                await conn.execute(delete(top_of_book).where(top_of_book.c.minute < cutoff))
            ).rowcount
    return Pruned(**counts)
