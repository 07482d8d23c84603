"""What may be stored, and what a write reports about what it stored and refused.

Every candle and top-of-book quote is checked before it reaches the database: a number that is not
finite, an open time off the minute, a high below the low, a negative volume, a crossed book or a
price past any traded one is refused with its reason (:class:`RejectedRow`), while the good rows of
the same batch still land. Candles are checked a block at a time (:func:`sane`); the reason is
spelled out for the rows that fail (:func:`check_candle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from cryptocast.records import MINUTE_MS, BookTop, Candle, CandleBlock

INF = math.inf
# No traded price comes near this (Binance's largest prices are below 10^7): a price above it is a
# broken feed, refused like any other insane row rather than stored to skew every model downstream.
MAX_PRICE = 1e12


@dataclass(frozen=True, slots=True)
class RejectedRow:
    index: int
    open_time: int
    reason: str

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.open_time / 1000, UTC).isoformat() if self.open_time else "?"
        return f"row {self.index} (open_time {when}): {self.reason}"


@dataclass(slots=True)
class WriteResult:
    received: int = 0
    inserted: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    newest_open_time: int | None = None

    @property
    def duplicates(self) -> int:
        return self.received - len(self.rejected) - self.inserted


def check_candle(c: Candle) -> str | None:
    """Why a candle must not be stored, or None when it is sane."""
    prices = (c.open, c.high, c.low, c.close)
    numbers = (*prices, c.volume, c.quote_volume, c.taker_buy_base, c.taker_buy_quote)
    if not all(math.isfinite(x) for x in numbers):
        return "non-finite number (NaN or infinity)"
    if c.open_time % MINUTE_MS:
        return "open time is not on a minute boundary"
    if c.close_time <= c.open_time:
        return "close time is not after open time"
    if c.low <= 0:
        return f"non-positive price (low={c.low})"
    if c.high < c.low:
        return f"high {c.high} is below low {c.low}"
    if c.high > MAX_PRICE:
        return f"price {c.high} above the sanity bound {MAX_PRICE:g}"
    if not (c.low <= c.open <= c.high and c.low <= c.close <= c.high):
        return f"open {c.open} / close {c.close} outside [low {c.low}, high {c.high}]"
    if min(c.volume, c.quote_volume, c.taker_buy_base, c.taker_buy_quote) < 0 or c.trades < 0:
        return "negative volume or trade count"
    return None


def check_quote(t: BookTop) -> str | None:
    """Why a top-of-book quote must not be stored, or None when it is sane."""
    numbers = (t.bid_price, t.bid_qty, t.ask_price, t.ask_qty)
    if not all(math.isfinite(x) for x in numbers):
        return "non-finite number (NaN or infinity)"
    if t.bid_price <= 0:
        return f"non-positive bid {t.bid_price}"
    if t.ask_price < t.bid_price:
        return f"crossed book: ask {t.ask_price} below bid {t.bid_price}"
    if t.ask_price > MAX_PRICE:
        return f"price {t.ask_price} above the sanity bound {MAX_PRICE:g}"
    if min(t.bid_qty, t.ask_qty) < 0:
        return f"negative size (bid {t.bid_qty}, ask {t.ask_qty})"
    return None


def sane(b: CandleBlock) -> np.ndarray:
    """Which rows pass :func:`check_candle`, for the whole block at once (NaN fails every comparison)."""
    ok = (b.low > 0) & (b.low <= b.open) & (b.open <= b.high) & (b.high <= MAX_PRICE)
    ok &= (b.low <= b.close) & (b.close <= b.high) & (b.trades >= 0) & (b.close_time > b.open_time)
    for volume in (b.volume, b.quote_volume, b.taker_buy_base, b.taker_buy_quote):
        ok &= (volume >= 0) & (volume < INF)
    return ok & (b.open_time % MINUTE_MS == 0)
