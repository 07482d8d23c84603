"""The completeness ledger: missing spans of a pair, exchange holes told apart from our gaps.

An exchange hole is a span the exchange itself has no candles for (REST returned a later candle
but none in the span): it is final and never requested again. An ingestion gap is ours to repair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.schema import gaps
from cryptocast.sql.writer import ms_to_dt

EXCHANGE_HOLE = "exchange_hole"
INGESTION_GAP = "ingestion_gap"


@dataclass(frozen=True, slots=True)
class Span:
    """Missing minutes ``start``..``end`` inclusive (open times in ms)."""

    start: int
    end: int

    @property
    def minutes(self) -> int:
        return (self.end - self.start) // MINUTE_MS + 1


def missing_spans(open_times: Iterable[int], start: int, end: int) -> list[Span]:
    """Spans of minutes in ``[start, end]`` absent from the sorted ``open_times``."""
    spans, expected = [], start
    for t in open_times:
        if t < start:
            continue
        if t > end:
            break
        if t > expected:
            spans.append(Span(expected, t - MINUTE_MS))
        expected = t + MINUTE_MS
    if expected <= end:
        spans.append(Span(expected, end))
    return spans


async def record_holes(db: Database, symbol_id: int, spans: Iterable[Span], kind: str = EXCHANGE_HOLE) -> int:
    rows = [
        {"symbol_id": symbol_id, "start_time": ms_to_dt(s.start), "end_time": ms_to_dt(s.end), "kind": kind}
        for s in spans
    ]
    if not rows:
        return 0
    async with db.begin() as conn:
        stmt = insert(gaps).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol_id", "start_time"],
            set_={"end_time": text("greatest(gaps.end_time, excluded.end_time)"), "kind": stmt.excluded.kind},
        )
        await conn.execute(stmt)
    return len(rows)


async def exchange_holes(db: Database, symbol_id: int) -> list[Span]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(gaps.c.start_time, gaps.c.end_time)
            .where(gaps.c.symbol_id == symbol_id, gaps.c.kind == EXCHANGE_HOLE)
            .order_by(gaps.c.start_time)
        )
        return [Span(int(a.timestamp() * 1000), int(b.timestamp() * 1000)) for a, b in rows]
