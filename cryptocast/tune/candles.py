"""Candles for one pair as a frame: from PostgreSQL (training, serving) or from a file (evaluation).

Every source ends in the same :class:`Candles` shape, so features are computed by one code path
whatever the data came from. Times stay integer milliseconds, as the exchange sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database

OHLCV = ("open", "high", "low", "close", "volume")
BOOK_COLUMNS = ("bid_price", "bid_qty", "ask_price", "ask_qty")
EXTRA_COLUMNS = ("quote_volume", "trades", "taker_buy_base")

_CANDLES_SQL = """
SELECT (extract(epoch FROM open_time) * 1000)::bigint AS open_time_ms,
       open, high, low, close, volume, quote_volume, trades::float8 AS trades, taker_buy_base,
       derived_fields
FROM price_history
WHERE symbol_id = $1 AND open_time >= $2 AND open_time < $3
ORDER BY open_time
"""
_BOOK_SQL = """
SELECT (extract(epoch FROM minute) * 1000)::bigint AS open_time_ms,
       bid_price, bid_qty, ask_price, ask_qty
FROM top_of_book
WHERE symbol_id = $1 AND minute >= $2 AND minute < $3 AND NOT derived
"""
_SPAN_SQL = "SELECT min(open_time), max(open_time) FROM price_history WHERE symbol_id = $1"


@dataclass(slots=True)
class Candles:
    """Recorded minutes sorted by open time; ``derived`` names columns that were made up, not recorded."""

    frame: pd.DataFrame
    derived: frozenset[str] = field(default_factory=frozenset)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def open_time(self) -> np.ndarray:
        return self.frame["open_time_ms"].to_numpy(np.int64)

    def since(self, start_ms: int) -> Candles:
        return Candles(
            self.frame[self.frame["open_time_ms"] >= start_ms].reset_index(drop=True), self.derived
        )

    def tail(self, n: int) -> Candles:
        """The newest ``n`` candles (a cheap positional slice: this is on the serving path)."""
        return Candles(self.frame.iloc[-n:] if n > 0 else self.frame.iloc[:0], self.derived)

    def until(self, end_ms: int) -> Candles:
        return Candles(self.frame[self.frame["open_time_ms"] < end_ms].reset_index(drop=True), self.derived)


def from_frame(frame: pd.DataFrame, derived: frozenset[str] = frozenset()) -> Candles:
    """Normalise any frame with ``open_time_ms`` and OHLCV columns (extra columns kept).

    A frame that is already in order, without repeats and with the right types (the database's
    and the API's) is used as it is: this runs on every served forecast.
    """
    times = frame["open_time_ms"].to_numpy()
    if len(times) > 1 and not (np.diff(times) > 0).all():
        frame = frame.sort_values("open_time_ms").drop_duplicates("open_time_ms", keep="last")
    types = {c: np.int64 if c == "open_time_ms" else np.float64 for c in frame.columns}
    if any(frame[c].dtype != t for c, t in types.items()):
        frame = frame.astype(types)
    return Candles(frame.reset_index(drop=True), derived)


def from_file(path: Path) -> Candles:
    """A candle file's minutes, read strictly by :func:`cryptocast.tune.candlefile.read_candle_file`
    (``open_time_ms,open,high,low,close,volume`` CSV, gzipped CSV or Parquet, or Binance's kline CSV)."""
    from cryptocast.tune.candlefile import read_candle_file

    return read_candle_file(Path(path)).candles


async def data_span(db: Database, symbol_id: int) -> tuple[datetime | None, datetime | None]:
    """First and last stored open time of a pair."""
    async with db.raw() as conn:
        row = await conn.fetchrow(_SPAN_SQL, symbol_id)
    return row[0], row[1]


async def recent_candles(db: Database, sid: int, span_ms: int) -> Candles:
    """The pair's newest ``span_ms`` of candles."""
    first, last = await data_span(db, sid)
    if first is None or last is None:
        raise ValueError(f"pair {sid} has no candles")
    end = last + timedelta(milliseconds=MINUTE_MS)
    return await from_database(db, sid, max(first, end - timedelta(milliseconds=span_ms)), end)


def history_ms(candles: Candles) -> int:
    """The span the candles cover, first minute to the end of the last."""
    return int(candles.open_time[-1]) + MINUTE_MS - int(candles.open_time[0]) if len(candles) else 0


async def from_database(
    db: Database, symbol_id: int, start: datetime, end: datetime, with_book: bool = False
) -> Candles:
    """A pair's candles in ``[start, end)``; top of book joined by minute when asked for."""
    async with db.raw() as conn:
        rows = await conn.fetch(_CANDLES_SQL, symbol_id, start, end)
        book = await conn.fetch(_BOOK_SQL, symbol_id, start, end) if with_book else []
    columns = ("open_time_ms", *OHLCV, *EXTRA_COLUMNS)
    frame = pd.DataFrame([tuple(r)[: len(columns)] for r in rows], columns=list(columns))
    derived = frozenset(name for r in rows for name in (r["derived_fields"] or ()))
    if with_book:
        book_frame = pd.DataFrame([tuple(r) for r in book], columns=["open_time_ms", *BOOK_COLUMNS])
        frame = frame.merge(book_frame, on="open_time_ms", how="left")
    return from_frame(frame, derived)
