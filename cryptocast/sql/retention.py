"""Retention for the tables that grow without bound besides candles (default: keep everything).

Candles are never pruned: they are the record. Predictions and top of book may be, by age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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
    """Delete rows older than the configured ages, measured from ``now`` (the exchange clock)."""
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
