"""What each replayed market stream sends as the exchange clock advances.

``<symbol>@kline_1m`` sends the final candle of every minute that closes (``x: true``) and, in
between, the forming candle about every 2 s of exchange time; ``<symbol>@bookTicker`` sends the book
around the forming price once per exchange second. Both are read from the replayed market
(:class:`~cryptocast.exchange.market.ReplaySymbol`), so they agree with the REST answers; the hub
(:mod:`cryptocast.exchange.streams`) thins them at high speed and fans them out.
"""

from __future__ import annotations

from cryptocast.exchange.market import ReplaySymbol
from cryptocast.records import MINUTE_MS

KLINE_UPDATE_MS = 2_000  # exchange time between forming-candle updates
BOOK_UPDATE_MS = 1_000  # exchange time between top-of-book updates


class KlineStream:
    """``<symbol>@kline_1m``: finals for every minute that closes, forming updates in between."""

    def __init__(self, sym: ReplaySymbol, now: int) -> None:
        self.sym = sym
        self.cursor = sym.closed_count(now)
        self.last_update: tuple[int, int] | None = None
        self.last_update_wall = 0.0

    def advance(self, now: int, wall_s: float, min_gap_s: float) -> list[dict]:
        sym = self.sym
        out: list[dict] = []
        closed = sym.closed_count(now)
        out.extend(
            sym.kline_event(i, int(sym.times[i]) + MINUTE_MS, closed=True) for i in range(self.cursor, closed)
        )
        self.cursor = max(self.cursor, closed)
        i = sym.forming_index(now)
        if i is not None:
            update = (i, (now - int(sym.times[i])) // KLINE_UPDATE_MS)
            if update != self.last_update and wall_s - self.last_update_wall >= min_gap_s:
                out.append(sym.kline_event(i, now, closed=False))
                self.last_update, self.last_update_wall = update, wall_s
        return out

    def future_event(self, now: int, minutes: int) -> dict | None:
        """A closed candle dated ``minutes`` after the forming minute (bad data: the ``future`` fault)."""
        closed = self.sym.closed_count(now)
        if not closed:
            return None
        event = self.sym.kline_event(closed - 1, now, closed=True)
        t = now // MINUTE_MS * MINUTE_MS + minutes * MINUTE_MS
        event["k"].update(t=t, T=t + MINUTE_MS - 1)
        return event


class BookStream:
    """``<symbol>@bookTicker``: the book around the forming price, once per exchange second."""

    def __init__(self, sym: ReplaySymbol, now: int) -> None:
        self.sym = sym
        self.last_second = -1
        self.last_wall = 0.0

    def advance(self, now: int, wall_s: float, min_gap_s: float) -> list[dict]:
        second = (now - self.sym.shift_ms) // BOOK_UPDATE_MS
        if second == self.last_second or wall_s - self.last_wall < min_gap_s:
            return []
        if self.sym.forming_index(now) is None:
            return []
        self.last_second, self.last_wall = second, wall_s
        q = self.sym.book(now)
        return [
            {
                "u": second,
                "s": self.sym.symbol,
                "b": f"{q.bid:.8f}",
                "B": f"{q.bid_qty:.8f}",
                "a": f"{q.ask:.8f}",
                "A": f"{q.ask_qty:.8f}",
            }
        ]
