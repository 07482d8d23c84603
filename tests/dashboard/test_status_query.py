"""One refresh of the status table is one SQL statement, however many pairs there are.

Why: the dashboard refreshes every pair's state, lag, completeness and restarts every 5 s; it used to
ask ``GET /pairs/{symbol}`` per pair, a count over that pair's candles each. ``GET /status`` reads
them all at once. The statements are counted on the real PostgreSQL connection (asyncpg's query
logger), and the counts are checked against the per-pair query ``GET /pairs/{symbol}`` still uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL

from cryptocast.serve import reads
from cryptocast.serve.api import views
from cryptocast.serve.api.status import pair_statuses
from cryptocast.sql.database import Database

START = datetime(2025, 3, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# symbol: (status, minutes stored from START, minutes left out, of which an exchange hole)
PAIRS = {
    "AAAUSDT": ("live", 120, range(40, 50), range(40, 45)),
    "BBBUSDT": ("live", 60, range(0), range(0)),
    "CCCUSDT": ("backfilling", 0, range(0), range(0)),
    "DDDUSDT": ("removed", 30, range(0), range(0)),
}

ADD_PAIR = """
INSERT INTO symbols (symbol, base_asset, quote_asset, status, restarts)
VALUES ($1, 'BASE', 'USDT', $2, $3) RETURNING id
"""
ADD_CANDLES = """
INSERT INTO price_history (symbol_id, open_time, open, high, low, close, volume, close_time,
                           quote_volume, trades, taker_buy_base, taker_buy_quote, provenance)
SELECT $1, t, 1, 1, 1, 1, 0, t + interval '59 seconds', 0, 0, 0, 0, 'rest'
FROM unnest($2::timestamptz[]) AS t
"""
ADD_HOLE = "INSERT INTO gaps (symbol_id, start_time, end_time, kind) VALUES ($1, $2, $3, 'exchange_hole')"


async def _store_pairs(db: Database) -> dict[str, int]:
    ids = {}
    async with db.raw() as conn:
        for restarts, (symbol, (status, minutes, missing, hole)) in enumerate(PAIRS.items()):
            sid = await conn.fetchval(ADD_PAIR, symbol, status, restarts)
            times = [START + i * MINUTE for i in range(minutes) if i not in missing]
            await conn.execute(ADD_CANDLES, sid, times)
            if times:
                await conn.execute("UPDATE symbols SET last_candle_time = $2 WHERE id = $1", sid, times[-1])
            if hole:
                await conn.execute(ADD_HOLE, sid, START + hole[0] * MINUTE, START + hole[-1] * MINUTE)
            ids[symbol] = sid
    return ids


def _count_statements(db: Database) -> list[str]:
    """Every statement sent on ``db``'s connections from now on (pool pings left out)."""
    sent: list[str] = []

    def on_connect(dbapi_connection: Any, _record: object) -> None:  # SQLAlchemy's asyncpg adapter
        dbapi_connection.driver_connection.add_query_logger(
            lambda record: sent.append(record.query) if record.query.strip(" ;") else None
        )

    event.listen(db.engine.sync_engine, "connect", on_connect)
    return sent


async def test_one_statement_reads_every_pairs_status(db_url: URL) -> None:
    setup, counted = Database(db_url), Database(db_url)
    sent = _count_statements(counted)
    try:
        ids = await _store_pairs(setup)
        now_ms = (START + 200 * MINUTE).timestamp() * 1000
        statuses = await pair_statuses(counted, now_ms)
        assert len(sent) == 1, sent

        tracked = [s for s, (status, *_) in PAIRS.items() if status != "removed"]
        assert [s["symbol"] for s in statuses] == tracked
        for row in statuses:
            status, minutes, missing, _ = PAIRS[row["symbol"]]
            counts = await reads.fetchrow(setup, reads.COMPLETENESS_SQL, ids[row["symbol"]])
            assert counts is not None
            assert row["stored_minutes"] == counts["stored"] == (minutes - len(missing) if minutes else 0)
            assert row["completeness_percent"] == views.completeness(counts)
            assert row["status"] == status
            assert row["restarts"] == list(PAIRS).index(row["symbol"])
            if minutes:
                last = START + (minutes - 1) * MINUTE
                assert row["last_candle_time"] == last.isoformat()
                assert row["data_lag_s"] == now_ms / 1000 - last.timestamp() - 60
            else:
                assert row["last_candle_time"] is None and row["data_lag_s"] is None
        # the hole is not held against the pair; the other missing minutes are
        assert statuses[0]["completeness_percent"] == round(100 * 110 / 115, 3)
        assert statuses[1]["completeness_percent"] == 100.0
    finally:
        await setup.dispose()
        await counted.dispose()
