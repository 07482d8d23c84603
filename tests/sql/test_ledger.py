"""The completeness ledger against a real PostgreSQL: ingestion gaps are listed, resolved, and give
way to an exchange hole found inside them."""

from __future__ import annotations

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.ledger import (
    INGESTION_GAP,
    Span,
    exchange_holes,
    ingestion_gaps,
    record_holes,
    resolve_gap,
)
from cryptocast.sql.queries import add_symbol

START = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS


async def test_a_gap_is_listed_until_resolved_and_a_hole_inside_it_stays(db: Database) -> None:
    pair = await add_symbol(db, "BTCUSDT", "BTC", "USDT")
    gap, later = Span(START, START + 9 * MINUTE_MS), Span(START + 60 * MINUTE_MS, START + 61 * MINUTE_MS)
    await record_holes(db, pair, [gap, later], INGESTION_GAP)
    await record_holes(db, pair, [Span(START, START + 2 * MINUTE_MS)], INGESTION_GAP)  # same start: widened
    assert await ingestion_gaps(db, pair) == [gap, later]

    hole = Span(START, START + 2 * MINUTE_MS)  # the repair found the exchange has none of these
    await record_holes(db, pair, [hole])
    assert await exchange_holes(db, pair) == [hole], "the hole keeps its own end, not the gap's"
    await resolve_gap(db, pair, gap)
    await resolve_gap(db, pair, later)
    assert await ingestion_gaps(db, pair) == []
    assert await exchange_holes(db, pair) == [hole]
