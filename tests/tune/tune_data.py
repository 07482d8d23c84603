"""Real candles for the forecasting tests: slices of the bundled Binance recordings (helpers)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cryptocast.records import MINUTE_MS, Candle
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.writer import CandleWriter
from cryptocast.tune.candles import Candles, from_file

DATA = Path(__file__).resolve().parents[2] / "cryptocast" / "exchange" / "data"
DERIVED = ("close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
HOLE_START_MS = 1573610400000  # 2019-11-13 02:00 UTC, first minute of a 140-minute exchange outage


@cache
def recording(name: str) -> Candles:
    return from_file(DATA / name)


def btc(days: float, offset_days: float = 0) -> Candles:
    """``days`` of BTCUSDT March 2025 minutes (no holes)."""
    c = recording("BTCUSDT-2025-03.parquet")
    start = int(c.open_time[0]) + int(offset_days * 86_400_000)
    return c.since(start).until(start + int(days * 86_400_000))


def ethbtc_around_hole(minutes_before: int, minutes_after: int) -> Candles:
    """ETHBTC minutes around the real 2019-11-13 exchange hole."""
    c = recording("ETHBTC-2019-11.parquet")
    return c.since(HOLE_START_MS - minutes_before * MINUTE_MS).until(
        HOLE_START_MS + (140 + minutes_after) * MINUTE_MS
    )


def to_records(candles: Candles) -> list[Candle]:
    """Candles as the writer takes them; fields the recording lacks are derived and marked so."""
    f = candles.frame
    out = []
    for t, o, h, lo, c, v in zip(
        *(f[k].to_numpy() for k in ("open_time_ms", "open", "high", "low", "close", "volume")), strict=True
    ):
        typical = (h + lo + c) / 3
        out.append(
            Candle(
                int(t),
                o,
                h,
                lo,
                c,
                v,
                int(t) + MINUTE_MS - 1,
                v * typical,
                int(v > 0),
                v / 2,
                v * typical / 2,
                derived_fields=DERIVED,
            )
        )
    return out


async def load_pair(db: Database, symbol: str, candles: Candles, status: str = "live") -> int:
    base, quote = symbol[:-4], symbol[-4:]
    sid = await add_symbol(db, symbol, base, quote, status=status)
    await CandleWriter(db).write(sid, to_records(candles))
    return sid
