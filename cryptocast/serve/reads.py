"""The API's reads, in SQL on the raw asyncpg connection (the latency-critical paths)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptocast.sql.database import Database

PAIR_SQL = "SELECT * FROM symbols WHERE symbol = $1"
PAIRS_SQL = "SELECT * FROM symbols ORDER BY symbol"
CHAMPIONS_SQL = """
SELECT DISTINCT ON (kind) id, kind, version, trained_at, metrics -> 'served_horizons' AS served_horizons
FROM models WHERE symbol_id = $1 AND status = 'champion' ORDER BY kind, version DESC
"""
LAST_TRAINING_SQL = "SELECT max(trained_at) FROM models WHERE symbol_id = $1 AND kind = 'lstm'"
CANDLES_SQL = """
SELECT open_time, open, high, low, close, volume, quote_volume, trades, provenance
FROM price_history WHERE symbol_id = $1 AND open_time >= $2 AND open_time < $3
ORDER BY open_time LIMIT $4
"""
BOOK_SQL = """
SELECT minute, bid_price, bid_qty, ask_price, ask_qty, derived
FROM top_of_book WHERE symbol_id = $1 AND minute >= $2 AND minute < $3
ORDER BY minute LIMIT $4
"""
PREDICTIONS_SQL = """
SELECT p.origin_time, p.horizon, p.origin_time + p.horizon * interval '1 minute' AS target_time,
       p.predicted, p.lower_80, p.upper_80, p.lower_95, p.upper_95, p.served, p.late, p.made_at,
       m.kind, m.version, a.close AS actual
FROM predictions p
JOIN models m ON m.id = p.model_id
LEFT JOIN price_history a ON a.symbol_id = p.symbol_id
     AND a.open_time = p.origin_time + p.horizon * interval '1 minute'
WHERE p.symbol_id = $1 AND p.origin_time >= $2 AND p.origin_time < $3 AND ($5 OR p.served)
ORDER BY p.origin_time, p.served DESC, p.horizon LIMIT $4
"""
LATEST_ORIGIN_SQL = "SELECT max(origin_time) FROM predictions WHERE symbol_id = $1 AND served"
COMPLETENESS_SQL = """
SELECT count(*) AS stored, min(open_time) AS first, max(open_time) AS last,
       (SELECT coalesce(sum(extract(epoch FROM end_time - start_time) / 60 + 1), 0)::bigint
        FROM gaps WHERE symbol_id = $1 AND kind = 'exchange_hole') AS holes
FROM price_history WHERE symbol_id = $1
"""
OPEN_COMMANDS_SQL = """
SELECT id, kind, status, created_at FROM commands
WHERE symbol = $1 AND status IN ('pending', 'running') ORDER BY id
"""


async def fetch(db: Database, sql: str, *args: object) -> list[dict]:
    async with db.raw() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def fetchrow(db: Database, sql: str, *args: object) -> dict | None:
    async with db.raw() as conn:
        row = await conn.fetchrow(sql, *args)
    return dict(row) if row is not None else None


async def fetchval(db: Database, sql: str, *args: object) -> Any:  # the value as asyncpg decodes it
    async with db.raw() as conn:
        return await conn.fetchval(sql, *args)


async def page(db: Database, sql: str, sid: int, start: datetime, end: datetime, limit: int) -> list[dict]:
    """Up to ``limit`` rows in ``[start, end)``, oldest first."""
    return await fetch(db, sql, sid, start, end, limit)
