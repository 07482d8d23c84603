"""The completeness ledger: missing spans of a pair, exchange holes told apart from our gaps.

An exchange hole is a span the exchange itself has no candles for (REST returned a later candle
but none in the span): it is final and never requested again. An ingestion gap is ours to repair:
candles we held and lost (a database outage longer than the ingestor's buffer). It is recorded
before any newer candle lands, so a crash cannot leave a gap that nobody knows of, and it leaves the
ledger once repaired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert

from cryptocast.records import MINUTE_MS, ms_to_dt
from cryptocast.sql.database import Database
from cryptocast.sql.schema import gaps

EXCHANGE_HOLE = "exchange_hole"
INGESTION_GAP = "ingestion_gap"
_END_TIME = (
    "CASE WHEN gaps.kind = excluded.kind THEN greatest(gaps.end_time, excluded.end_time) "
    "ELSE excluded.end_time END"
)


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
            # the same kind widens the span; another kind replaces it (a hole found inside a gap)
            set_={"end_time": text(_END_TIME), "kind": stmt.excluded.kind},
        )
        await conn.execute(stmt)
    return len(rows)


async def exchange_holes(db: Database, symbol_id: int) -> list[Span]:
    return await _spans(db, symbol_id, EXCHANGE_HOLE)


async def ingestion_gaps(db: Database, symbol_id: int) -> list[Span]:
    """The pair's recorded gaps still to repair, oldest first."""
    return await _spans(db, symbol_id, INGESTION_GAP)


async def resolve_gap(db: Database, symbol_id: int, span: Span) -> None:
    """A repaired ingestion gap leaves the ledger (an exchange hole that replaced it stays)."""
    async with db.begin() as conn:
        await conn.execute(
            delete(gaps).where(
                gaps.c.symbol_id == symbol_id,
                gaps.c.start_time == ms_to_dt(span.start),
                gaps.c.kind == INGESTION_GAP,
            )
        )


async def _spans(db: Database, symbol_id: int, kind: str) -> list[Span]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(gaps.c.start_time, gaps.c.end_time)
            .where(gaps.c.symbol_id == symbol_id, gaps.c.kind == kind)
            .order_by(gaps.c.start_time)
        )
        return [Span(int(a.timestamp() * 1000), int(b.timestamp() * 1000)) for a, b in rows]
