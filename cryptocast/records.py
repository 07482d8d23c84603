"""Typed records that cross component boundaries (exchange → actors → sql).

Exchange handlers normalise raw payloads into these; the SQL writer stores them. Times are
integer milliseconds since the epoch (UTC), as the exchange sends them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MINUTE_MS = 60_000

# The kline fields a source may have derived rather than recorded.
DERIVABLE_FIELDS = ("close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")


class Provenance(StrEnum):
    REST = "rest"
    WEBSOCKET = "websocket"
    REPAIR = "repair"


@dataclass(slots=True, frozen=True)
class Candle:
    """One closed 1-minute kline with all 12 Binance fields (the 12th, 'ignore', is dropped)."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int
    quote_volume: float
    trades: int
    taker_buy_base: float
    taker_buy_quote: float
    provenance: Provenance = Provenance.REST
    derived_fields: tuple[str, ...] = field(default=())

    @classmethod
    def from_rest_row(
        cls, row: list, provenance: Provenance = Provenance.REST, derived_fields: tuple[str, ...] = ()
    ) -> Candle:
        """Parse one ``/api/v3/klines`` row (numbers as strings, times as ints)."""
        return cls(
            open_time=int(row[0]),
            open=float(row[1]),
            high=float(row[2]),
            low=float(row[3]),
            close=float(row[4]),
            volume=float(row[5]),
            close_time=int(row[6]),
            quote_volume=float(row[7]),
            trades=int(row[8]),
            taker_buy_base=float(row[9]),
            taker_buy_quote=float(row[10]),
            provenance=provenance,
            derived_fields=derived_fields,
        )

    @classmethod
    def from_ws_kline(
        cls, k: dict, provenance: Provenance = Provenance.WEBSOCKET, derived_fields: tuple[str, ...] = ()
    ) -> Candle:
        """Parse the ``k`` object of a ``<symbol>@kline_1m`` event."""
        return cls(
            open_time=int(k["t"]),
            open=float(k["o"]),
            high=float(k["h"]),
            low=float(k["l"]),
            close=float(k["c"]),
            volume=float(k["v"]),
            close_time=int(k["T"]),
            quote_volume=float(k["q"]),
            trades=int(k["n"]),
            taker_buy_base=float(k["V"]),
            taker_buy_quote=float(k["Q"]),
            provenance=provenance,
            derived_fields=derived_fields,
        )


@dataclass(slots=True, frozen=True)
class BookTop:
    """Best bid/ask for one pair at the end of one minute (the last quote seen before it closed)."""

    minute: int  # open time (ms) of the minute this quote closes
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    derived: bool = False
