"""Completeness per pair: expected vs stored minutes, exchange holes vs ingestion gaps, duplicates."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from cryptocast.sql.database import Database

_REPORT = text(
    """
    WITH stats AS (
        SELECT symbol_id, min(open_time) AS first, max(open_time) AS last,
               count(*) AS stored, count(*) - count(DISTINCT open_time) AS duplicates
        FROM price_history GROUP BY symbol_id
    ), holes AS (
        SELECT symbol_id, coalesce(sum(extract(epoch FROM end_time - start_time) / 60 + 1), 0)::bigint AS minutes
        FROM gaps WHERE kind = 'exchange_hole' GROUP BY symbol_id
    )
    SELECT s.symbol, st.first, st.last, st.stored, st.duplicates,
           (extract(epoch FROM st.last - st.first) / 60 + 1)::bigint AS expected,
           coalesce(h.minutes, 0) AS exchange_holes
    FROM symbols s JOIN stats st ON st.symbol_id = s.id LEFT JOIN holes h ON h.symbol_id = s.id
    ORDER BY s.symbol
    """
)


@dataclass(frozen=True, slots=True)
class Completeness:
    symbol: str
    first: str
    last: str
    expected: int
    stored: int
    exchange_holes: int
    duplicates: int

    @property
    def missing(self) -> int:
        """Minutes missing that are not exchange holes: ingestion gaps, ours to repair."""
        return self.expected - self.stored - self.exchange_holes

    @property
    def percent(self) -> float:
        available = self.expected - self.exchange_holes
        return 100.0 * self.stored / available if available else 100.0


async def completeness(db: Database) -> list[Completeness]:
    async with db.connect() as conn:
        rows = (await conn.execute(_REPORT)).all()
    return [
        Completeness(
            r.symbol,
            r.first.isoformat(),
            r.last.isoformat(),
            r.expected,
            r.stored,
            r.exchange_holes,
            r.duplicates,
        )
        for r in rows
    ]
