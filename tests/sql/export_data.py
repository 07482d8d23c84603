"""A pair with one real day of candles, a top of book per minute and predictions (served and shadow,
with and without bands, with targets inside and past the stored day), for the export tests.

Why: the data-layer, CLI and HTTP export tests compare files with the same stored rows; the rows
and the outcomes the files must carry are made once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptocast.sql.database import Database
from tests.tune.tune_data import btc, load_pair

PAIR = "BTCUSDT"
HORIZONS = (1, 5, 15, 30)
PREDICTED_ORIGINS = 40  # the day's last minutes, so the longer horizons' targets fall past its end
CANDLE_COLUMNS = "open_time, open, high, low, close, volume, quote_volume, trades, taker_buy_base, taker_buy_quote, provenance"


@dataclass(frozen=True)
class Seeded:
    symbol_id: int
    start: datetime  # the first stored minute
    end: datetime  # just after the last
    closes: dict[datetime, float]


async def seed(db: Database) -> Seeded:
    sid = await load_pair(db, PAIR, btc(1.0))
    async with db.raw() as conn:
        candles = await conn.fetch("SELECT open_time, close FROM price_history WHERE symbol_id = $1", sid)
        closes = {r["open_time"]: r["close"] for r in candles}
        await conn.executemany(
            "INSERT INTO top_of_book (symbol_id, minute, bid_price, bid_qty, ask_price, ask_qty, derived) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (sid, t, close - 0.5, 1.0 + i % 7, close + 0.5, 2.0 + i % 5, i % 2 == 0)
                for i, (t, close) in enumerate(sorted(closes.items()))
            ],
        )
        served = await conn.fetchval(
            "INSERT INTO models (symbol_id, kind, version, status) VALUES ($1, 'persistence', 1, 'champion') "
            "RETURNING id",
            sid,
        )
        shadow = await conn.fetchval(
            "INSERT INTO models (symbol_id, kind, version, status) VALUES ($1, 'lstm', 2, 'shadow') RETURNING id",
            sid,
        )
        last = max(closes)
        rows = []
        for k in range(PREDICTED_ORIGINS):
            origin = last - timedelta(minutes=PREDICTED_ORIGINS - 1 - k)
            for h in HORIZONS:
                p = closes[origin]
                # a band 0.05 % wide at the short horizons, none stored at 30 minutes
                bands = (p * 0.999, p * 0.9995, p * 1.0005, p * 1.001) if h < 30 else (None,) * 4
                rows.append((sid, served, origin, h, p, *bands, True))
                rows.append(
                    (sid, shadow, origin, h, p * 1.0001, p * 0.99, p * 0.995, p * 1.005, p * 1.01, False)
                )
        await conn.executemany(
            "INSERT INTO predictions (symbol_id, model_id, origin_time, horizon, predicted, "
            "lower_95, lower_80, upper_80, upper_95, served) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            rows,
        )
    start = min(closes)
    return Seeded(sid, start, last + timedelta(minutes=1), closes)


async def stored(db: Database, table: str, columns: str, key: str, seeded: Seeded) -> list[dict]:
    """The rows of ``table`` the export must carry, by the test's own query."""
    async with db.raw() as conn:
        rows = await conn.fetch(
            f"SELECT {columns} FROM {table} WHERE symbol_id = $1 AND {key} >= $2 AND {key} < $3 ORDER BY {key}",
            seeded.symbol_id,
            seeded.start,
            seeded.end,
        )
    return [dict(r) for r in rows]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()
