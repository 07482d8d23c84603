"""Completeness per pair: expected vs stored minutes, exchange holes vs ingestion gaps, duplicates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, text

from cryptocast.sql.database import Database
from cryptocast.sql.schema import symbols

_REPORT = text(  # one pair at a time: each reads its own range of the (symbol_id, open_time) key
    """
    WITH stats AS (
        SELECT min(open_time) AS first, max(open_time) AS last,
               count(*) AS stored, count(*) - count(DISTINCT open_time) AS duplicates
        FROM price_history WHERE symbol_id = :sid
    ), holes AS (
        SELECT coalesce(sum(extract(epoch FROM end_time - start_time) / 60 + 1), 0)::bigint AS minutes
        FROM gaps WHERE kind = 'exchange_hole' AND symbol_id = :sid
    )
    SELECT st.first, st.last, st.stored, st.duplicates,
           (extract(epoch FROM st.last - st.first) / 60 + 1)::bigint AS expected,
           h.minutes AS exchange_holes
    FROM stats st CROSS JOIN holes h WHERE st.stored > 0
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

    def view(self) -> dict:
        """The pair's completeness as ``cryptocast check --json`` prints it."""
        return {
            "symbol": self.symbol,
            "first": self.first,
            "last": self.last,
            "expected": self.expected,
            "stored": self.stored,
            "exchange_holes": self.exchange_holes,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "percent": self.percent,
        }


async def completeness(db: Database, on_pair: Callable[[int, int], None] | None = None) -> list[Completeness]:
    """Every pair with stored candles, by name; ``on_pair(done, total)`` after each pair is counted."""
    async with db.connect() as conn:
        pairs = (await conn.execute(select(symbols.c.id, symbols.c.symbol).order_by(symbols.c.symbol))).all()
        found = []
        for done, (sid, symbol) in enumerate(pairs, 1):
            r = (await conn.execute(_REPORT, {"sid": sid})).first()
            if r is not None:
                found.append(
                    Completeness(
                        symbol,
                        r.first.isoformat(),
                        r.last.isoformat(),
                        r.expected,
                        r.stored,
                        r.exchange_holes,
                        r.duplicates,
                    )
                )
            if on_pair:
                on_pair(done, len(pairs))
    return found
