"""Typed records that cross component boundaries (exchange → actors → sql).

Exchange handlers normalise raw payloads into these; the SQL writer stores them. Times are
integer milliseconds since the epoch (UTC), as the exchange sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np

MINUTE_MS = 60_000


def ms_to_dt(ms: int) -> datetime:
    """The database's (timezone-aware) time of an exchange time in milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


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


# What a candle shares with its neighbours from the same source: provenance and derived fields.
Kind = tuple[Provenance, tuple[str, ...]]


@dataclass(slots=True, frozen=True)
class CandleBlock:
    """Many candles as columns: the bulk form of history (a backfill page is one block).

    Building a :class:`Candle` per row costs more than fetching and storing it, so bulk paths keep
    numpy columns (times and trades int64, the rest float64) and make candles only where single
    ones are needed. ``kind[i]`` indexes ``kinds``: rows from one response share one kind.
    """

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    close_time: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray
    taker_buy_base: np.ndarray
    taker_buy_quote: np.ndarray
    kind: np.ndarray
    kinds: tuple[Kind, ...]

    @classmethod
    def of_kind(
        cls, columns: Sequence[np.ndarray], provenance: Provenance, derived: tuple[str, ...]
    ) -> CandleBlock:
        """The 11 numeric columns in Binance's order, all rows of one kind."""
        t, o, h, lo, c, v, ct, q, n, vb, qb = columns
        i8, f8 = np.int64, np.float64
        return cls(
            t.astype(i8, copy=False),
            o.astype(f8, copy=False),
            h.astype(f8, copy=False),
            lo.astype(f8, copy=False),
            c.astype(f8, copy=False),
            v.astype(f8, copy=False),
            ct.astype(i8, copy=False),
            q.astype(f8, copy=False),
            n.astype(i8, copy=False),
            vb.astype(f8, copy=False),
            qb.astype(f8, copy=False),
            np.zeros(len(t), np.uint8),
            ((provenance, derived),),
        )

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleBlock:
        kinds: dict[Kind, int] = {}
        kind = [kinds.setdefault((c.provenance, c.derived_fields), len(kinds)) for c in candles]
        ints = np.array([(c.open_time, c.close_time, c.trades) for c in candles], np.int64).reshape(-1, 3)
        floats = np.array(
            [
                (
                    c.open,
                    c.high,
                    c.low,
                    c.close,
                    c.volume,
                    c.quote_volume,
                    c.taker_buy_base,
                    c.taker_buy_quote,
                )
                for c in candles
            ],
            np.float64,
        ).reshape(-1, 8)
        o, h, lo, c, v, q, vb, qb = floats.T
        t, ct, n = ints.T
        return cls(t, o, h, lo, c, v, ct, q, n, vb, qb, np.array(kind, np.uint8), tuple(kinds))

    @classmethod
    def concat(cls, blocks: Sequence[CandleBlock]) -> CandleBlock:
        if len(blocks) == 1:
            return blocks[0]
        kinds: dict[Kind, int] = {}
        codes = []
        for b in blocks:
            remap = np.array([kinds.setdefault(k, len(kinds)) for k in b.kinds], np.uint8)
            codes.append(remap[b.kind])
        columns = [np.concatenate([getattr(b, name) for b in blocks]) for name in _NUMERIC]
        return cls._of_columns(columns, np.concatenate(codes), tuple(kinds))

    @classmethod
    def _of_columns(
        cls, columns: Sequence[np.ndarray], kind: np.ndarray, kinds: tuple[Kind, ...]
    ) -> CandleBlock:
        """A block from its numeric columns in ``_NUMERIC`` order, the kind codes and the kinds."""
        t, o, h, lo, c, v, ct, q, n, vb, qb = columns
        return cls(t, o, h, lo, c, v, ct, q, n, vb, qb, kind, kinds)

    def __len__(self) -> int:
        return len(self.open_time)

    def __getitem__(self, index: slice | np.ndarray) -> CandleBlock:
        """The rows at a slice or boolean mask / index array, as a block."""
        columns = [getattr(self, name)[index] for name in _NUMERIC]
        return CandleBlock._of_columns(columns, self.kind[index], self.kinds)

    def candle(self, i: int) -> Candle:
        return Candle(*(getattr(self, name)[i].item() for name in _NUMERIC), *self.kinds[self.kind[i]])

    def candles(self) -> list[Candle]:
        columns = [getattr(self, name).tolist() for name in _NUMERIC]
        kinds = self.kinds
        return [Candle(*values, *kinds[k]) for *values, k in zip(*columns, self.kind.tolist(), strict=True)]


_NUMERIC = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
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
