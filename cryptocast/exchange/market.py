"""The replayed market: every symbol's candles on the exchange clock, forming candles and books.

A :class:`ReplaySymbol` is one recording shifted onto the exchange timeline. It answers what a
client may see at exchange time ``now``: minutes that have closed, the forming minute so far (from
the intra-minute path, never the finished candle), coarser intervals aggregated from minutes, and a
top of book around the forming price. Everything is a pure function of ``now``, so REST and
websocket answers agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from cryptocast.exchange.bars import Bars, aggregate, fmt
from cryptocast.exchange.clock import ReplayClock, Timeline
from cryptocast.exchange.path import STEP_MS, STEPS, MinutePath, minute_path, seed_for
from cryptocast.exchange.protocol import BOOK_FIELD
from cryptocast.exchange.recordings import Recording, split_symbol
from cryptocast.exchange.spread import Quote, SpreadModel
from cryptocast.records import DERIVABLE_FIELDS, MINUTE_MS

TRADES_PER_TYPICAL_MINUTE = 40  # derived trade count of a median-volume minute
TAKER_TILT = 0.3  # derived taker-buy share: 0.5 ± tilt × (close-open)/(high-low)
FIRST_TRADE_ID = 1_000_000
CLONE_PRICE_STEP = 0.001  # clone k trades at (1 + k × step) × the recorded prices
STATUS_TRADING, STATUS_BREAK, STATUS_HALT = "TRADING", "BREAK", "HALT"
DERIVED_FIELDS = (*DERIVABLE_FIELDS, BOOK_FIELD)  # the recordings hold OHLCV only


def derive(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray, trade_unit: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quote volume, trades and taker-buy volumes from OHLCV (the fields recordings lack)."""
    typical = (h + lo + c) / 3.0
    quote_volume = v * typical
    trades = np.where(v > 0, np.maximum(1.0, np.rint(v / trade_unit)), 0.0).astype(np.int64)
    span = h - lo
    buy_share = np.where(span > 0, 0.5 + TAKER_TILT * (c - o) / np.where(span > 0, span, 1.0), 0.5)
    taker_base = v * buy_share
    return quote_volume, trades, taker_base, taker_base * typical


class ReplaySymbol:
    """One recording on the exchange timeline (possibly as a clone with offset prices)."""

    def __init__(
        self,
        recording: Recording,
        shift_ms: int,
        spreads: SpreadModel,
        *,
        name: str | None = None,
        clone_index: int = 0,
    ) -> None:
        self.symbol = name or recording.symbol
        self.recording = recording
        self.clone_of = recording.symbol if clone_index else None
        self.base, self.quote = split_symbol(recording.symbol)
        self.shift_ms = shift_ms
        self.tick = recording.tick_size
        self.lot = recording.step_size
        self.times = recording.open_time + shift_ms
        factor = 1.0 + CLONE_PRICE_STEP * clone_index
        snap = (lambda a: np.rint(a * factor / self.tick) * self.tick) if clone_index else (lambda a: a)
        self.o, self.h, self.l, self.c = (
            snap(a) for a in (recording.open, recording.high, recording.low, recording.close)
        )
        self.v = recording.volume
        positive = self.v[self.v > 0]
        self.typical_volume = float(np.median(positive)) if len(positive) else self.lot
        self.trade_unit = self.typical_volume / TRADES_PER_TYPICAL_MINUTE
        self.q, self.n, self.vb, self.qb = derive(self.o, self.h, self.l, self.c, self.v, self.trade_unit)
        self.first_trade_id = FIRST_TRADE_ID + np.concatenate([[0], np.cumsum(self.n)[:-1]])
        self.spreads = spreads
        self._path = lru_cache(maxsize=8)(self._make_path)

    # --- timeline -------------------------------------------------------------------------------
    @property
    def start(self) -> int:
        return int(self.times[0])

    @property
    def end(self) -> int:
        """Exchange time at which the last recorded minute closes; the symbol is in BREAK after it."""
        return int(self.times[-1]) + MINUTE_MS

    def closed_count(self, now: int) -> int:
        """How many minutes have closed at ``now`` (they are ``times[:count]``)."""
        return int(np.searchsorted(self.times, now - MINUTE_MS, side="right"))

    def forming_index(self, now: int) -> int | None:
        i = self.closed_count(now)
        if i < len(self.times) and self.times[i] <= now:
            return i
        return None

    def is_live(self, now: int) -> bool:
        return self.start <= now < self.end

    # --- the forming minute ---------------------------------------------------------------------
    def _make_path(self, i: int) -> MinutePath:
        seed = seed_for(self.symbol, int(self.recording.open_time[i]))
        return minute_path(seed, self.o[i], self.h[i], self.l[i], self.c[i], self.v[i], self.tick, self.lot)

    def path(self, i: int) -> MinutePath:
        return self._path(i)

    def partial(self, i: int, step: int) -> tuple[float, float, float, float, float]:
        """OHLCV of minute ``i`` after ``step`` seconds (step < 60), from its path."""
        p = self.path(i)
        return self.o[i], p.high(step), p.low(step), float(p.price[step]), float(p.volume[step])

    def bars(self, lo: int, hi: int, now: int) -> Bars:
        """Minutes ``lo..hi-1``; a minute that has not closed at ``now`` is its partial state."""
        hi = max(lo, hi)
        closed = max(lo, min(hi, self.closed_count(now)))
        sl = slice(lo, closed)
        cols = [self.o[sl], self.h[sl], self.l[sl], self.c[sl], self.v[sl]]
        derived = [self.q[sl], self.n[sl], self.vb[sl], self.qb[sl]]
        times = self.times[lo:hi]
        if hi > closed:  # the forming minute, always the last one
            step = (now - int(self.times[closed])) // STEP_MS
            po, ph, pl, pc, pv = (np.array([x]) for x in self.partial(closed, step))
            values = [po, ph, pl, pc, pv]
            extra = derive(po, ph, pl, pc, pv, self.trade_unit)
            cols = [np.concatenate([a, b]) for a, b in zip(cols, values, strict=True)]
            derived = [np.concatenate([a, b]) for a, b in zip(derived, extra, strict=True)]
        return Bars(times, times + MINUTE_MS - 1, *cols, *derived)

    # --- klines ---------------------------------------------------------------------------------
    def klines(self, interval: str, start: int | None, end: int | None, limit: int, now: int) -> Bars:
        """What ``/api/v3/klines`` returns at exchange time ``now``."""
        visible = self.closed_count(now) + (self.forming_index(now) is not None)
        if interval == "1m":
            hi = visible if end is None else min(visible, int(np.searchsorted(self.times, end, side="right")))
            if start is not None:
                lo = int(np.searchsorted(self.times, start, side="left"))
                hi = max(lo, min(hi, lo + limit))
            else:
                lo = max(0, hi - limit)
            return self.bars(lo, hi, now)
        lo = 0 if start is None else int(np.searchsorted(self.times, start, side="left"))
        minutes = self.bars(lo, visible, now)
        return aggregate(minutes, interval, start, end, limit)

    # --- websocket payloads ---------------------------------------------------------------------
    def kline_event(self, i: int, now: int, closed: bool) -> dict:
        """A ``@kline_1m`` event for minute ``i``: final if ``closed``, else its state at ``now``."""
        bars = self.bars(i, i + 1, self.end if closed else now)
        t, n = int(bars.open_time[0]), int(bars.trades[0])
        first = int(self.first_trade_id[i]) if n else -1
        return {
            "e": "kline",
            "E": now,
            "s": self.symbol,
            "k": {
                "t": t,
                "T": t + MINUTE_MS - 1,
                "s": self.symbol,
                "i": "1m",
                "f": first,
                "L": first + n - 1 if n else -1,
                "o": fmt(bars.open[0]),
                "c": fmt(bars.close[0]),
                "h": fmt(bars.high[0]),
                "l": fmt(bars.low[0]),
                "v": fmt(bars.volume[0]),
                "n": n,
                "x": closed,
                "q": fmt(bars.quote_volume[0]),
                "V": fmt(bars.taker_base[0]),
                "Q": fmt(bars.taker_quote[0]),
                "B": "0",
            },
        }

    # --- top of book ----------------------------------------------------------------------------
    def last_price(self, now: int) -> float:
        """The forming minute's current price; the last close in a hole or after the end."""
        i = self.forming_index(now)
        if i is not None:
            return float(self.path(i).price[min(STEPS - 1, (now - int(self.times[i])) // STEP_MS)])
        closed = self.closed_count(now)
        return float(self.c[closed - 1]) if closed else float(self.o[0])

    def book(self, now: int) -> Quote:
        second = (now - self.shift_ms) // STEP_MS
        seed = seed_for(self.symbol, second * STEP_MS) ^ 0x5EED
        return self.spreads.quote(seed, self.last_price(now), self.tick, self.lot, self.typical_volume)

    def book_ticker(self, now: int) -> dict:
        q = self.book(now)
        return {
            "symbol": self.symbol,
            "bidPrice": fmt(q.bid),
            "bidQty": fmt(q.bid_qty),
            "askPrice": fmt(q.ask),
            "askQty": fmt(q.ask_qty),
        }


class Market:
    """All replayed symbols on one exchange clock."""

    def __init__(
        self,
        recordings: Iterable[Recording],
        timeline: Timeline,
        periods: dict[int, int],
        clock: ReplayClock,
        clones: dict[str, int] | None = None,
        spreads: SpreadModel | None = None,
    ) -> None:
        self.clock = clock
        spreads = spreads or SpreadModel()
        self.symbols: dict[str, ReplaySymbol] = {}
        for rec in recordings:
            shift = timeline.shift_for(str(periods[rec.first_open]))
            self.symbols[rec.symbol] = ReplaySymbol(rec, shift, spreads)
        for pair, count in (clones or {}).items():
            original = self.symbols[pair]
            for k in range(1, count + 1):
                name = clone_name(pair, k)
                self.symbols[name] = ReplaySymbol(
                    original.recording, original.shift_ms, spreads, name=name, clone_index=k
                )

    def get(self, symbol: str) -> ReplaySymbol | None:
        return self.symbols.get(symbol)


def clone_name(pair: str, k: int) -> str:
    return f"{pair}_C{k:02d}"
