"""Klines as columns: Binance's intervals, their rows and JSON, and coarser bars aggregated from minutes.

The replayed market (:mod:`cryptocast.exchange.market`) answers in 1-minute :class:`Bars`; any
other interval Binance serves is aggregated from them (:func:`aggregate`), bucketed as Binance
buckets it: weeks open on Monday 00:00 UTC, months on the first of the month. Numbers are written
as Binance writes them, with 8 decimals (:func:`fmt`), so REST and websocket texts agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptocast.records import MINUTE_MS

DAY_MS = 24 * 3_600_000
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
MONTH = "1M"
SUPPORTED_INTERVALS = (*INTERVAL_MS, MONTH)
BINANCE_INTERVALS = ("1s", *SUPPORTED_INTERVALS)
# Weekly bars open on Monday 00:00 UTC; the epoch (1970-01-01) was a Thursday.
INTERVAL_ALIGN_MS = {"1w": 4 * DAY_MS}


def fmt(value: float) -> str:
    return f"{value:.8f}"


@dataclass(frozen=True, slots=True)
class Bars:
    """Columns of consecutive candles (1m or aggregated), including derived fields."""

    open_time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    taker_base: np.ndarray
    taker_quote: np.ndarray

    def _columns(self) -> zip:
        return zip(
            self.open_time.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            self.close_time.tolist(),
            self.quote_volume.tolist(),
            self.trades.tolist(),
            self.taker_base.tolist(),
            self.taker_quote.tolist(),
            strict=True,
        )

    def rows(self) -> list[list]:
        """Binance's 12-field kline rows: times and trades as ints, the rest as strings."""
        return [
            [t, fmt(o), fmt(h), fmt(lo), fmt(c), fmt(v), ct, fmt(q), n, fmt(vb), fmt(qb), "0"]
            for t, o, h, lo, c, v, ct, q, n, vb, qb in self._columns()
        ]

    def json(self) -> str:
        """``rows()`` as compact JSON text, one ``%`` format per row in C (paging speed is dominated by this)."""
        return "[" + ",".join(map(_ROW_JSON.__mod__, self._columns())) + "]"


# One kline row of Bars.json: %.8f is fmt()'s format, so REST and websocket texts agree.
_ROW_JSON = '[%d,"%.8f","%.8f","%.8f","%.8f","%.8f",%d,"%.8f",%d,"%.8f","%.8f","0"]'


def bucket_open(open_time: np.ndarray, interval: str) -> np.ndarray:
    if interval == MONTH:
        return (
            open_time.astype("datetime64[ms]")
            .astype("datetime64[M]")
            .astype("datetime64[ms]")
            .astype(np.int64)
        )
    size, align = INTERVAL_MS[interval], INTERVAL_ALIGN_MS.get(interval, 0)
    return (open_time - align) // size * size + align


def bucket_close(bucket: np.ndarray, interval: str) -> np.ndarray:
    if interval == MONTH:
        months = bucket.astype("datetime64[ms]").astype("datetime64[M]") + 1
        return months.astype("datetime64[ms]").astype(np.int64) - 1
    return bucket + INTERVAL_MS[interval] - 1


def aggregate(minutes: Bars, interval: str, start: int | None, end: int | None, limit: int) -> Bars:
    """Coarser bars from consecutive minutes; buckets without minutes (holes) are absent."""
    if len(minutes.open_time) == 0:
        return minutes
    keys = bucket_open(minutes.open_time, interval)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1])
    ends = np.concatenate([starts[1:], [len(keys)]]) - 1
    buckets = keys[starts]
    keep = np.ones(len(starts), dtype=bool)
    if start is not None:
        keep &= buckets >= start
    if end is not None:
        keep &= buckets <= end
    idx = np.flatnonzero(keep)
    idx = idx[:limit] if start is not None else idx[-limit:]
    s, e = starts[idx], ends[idx]

    def total(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, starts)[idx]

    return Bars(
        open_time=buckets[idx],
        close_time=bucket_close(buckets[idx], interval),
        open=minutes.open[s],
        high=np.maximum.reduceat(minutes.high, starts)[idx],
        low=np.minimum.reduceat(minutes.low, starts)[idx],
        close=minutes.close[e],
        volume=total(minutes.volume),
        quote_volume=total(minutes.quote_volume),
        trades=total(minutes.trades),
        taker_base=total(minutes.taker_base),
        taker_quote=total(minutes.taker_quote),
    )
