"""Group commit: the live candles of many pairs that close together, stored in one statement.

Every pair closes its minute at the same instant, so a host of 50 pairs would otherwise send 50
one-row transactions at once: 50 round trips, 50 commits and as many busy server processes on a
machine that may have two cores. Here each pair still awaits its own candle, but the candles
handed in while the loop was busy (and while the previous statement ran) leave together: one
statement locks their pairs, inserts the candles and their tops of book, advances each pair's
``last_candle_time`` and sends one ``NOTIFY`` per new candle, in one transaction. A lone candle
waits for nothing: the batch leaves at the loop's next turn.

A pair appears at most once per batch, so each pair's candles keep their order. A batch the
database refuses for a broken constraint is written again one candle at a time, so only the
candle at fault fails; a connection failure fails every candle of the batch, and each pair holds
its own (``heldwrites.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from cryptocast.records import BookTop, Candle, ms_to_dt
from cryptocast.sql.database import Database
from cryptocast.sql.schema import CANDLES_CHANNEL

MAX_BATCH = 500  # candles in one statement

_CANDLE_TYPES = (
    "int[]",  # symbol_id
    "timestamptz[]",  # open_time
    "float8[]",  # open
    "float8[]",  # high
    "float8[]",  # low
    "float8[]",  # close
    "float8[]",  # volume
    "timestamptz[]",  # close_time
    "float8[]",  # quote_volume
    "bigint[]",  # trades
    "float8[]",  # taker_buy_base
    "float8[]",  # taker_buy_quote
    "text[]",  # provenance
    "text[]",  # derived_fields, comma-joined (field names hold no comma)
    "bigint[]",  # open_time in ms, for the announcement
)
_BOOK_TYPES = ("int[]", "timestamptz[]", "float8[]", "float8[]", "float8[]", "float8[]", "bool[]")


def _unnest(types: tuple[str, ...], first: int) -> str:
    return ", ".join(f"${first + i}::{t}" for i, t in enumerate(types))


_BOOK_FIRST = len(_CANDLE_TYPES) + 1
_CHANNEL = len(_CANDLE_TYPES) + len(_BOOK_TYPES) + 1
_GROUP_INSERT = f"""
WITH input AS (
    SELECT * FROM unnest({_unnest(_CANDLE_TYPES, 1)}) AS i(
        symbol_id, open_time, open, high, low, close, volume, close_time, quote_volume, trades,
        taker_buy_base, taker_buy_quote, provenance, derived, open_ms)
),
pair AS (SELECT id, symbol FROM symbols WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE),
ins AS (
    INSERT INTO price_history (symbol_id, open_time, open, high, low, close, volume, close_time,
        quote_volume, trades, taker_buy_base, taker_buy_quote, provenance, derived_fields)
    SELECT i.symbol_id, i.open_time, i.open, i.high, i.low, i.close, i.volume, i.close_time,
        i.quote_volume, i.trades, i.taker_buy_base, i.taker_buy_quote, i.provenance,
        string_to_array(i.derived, ',')
    FROM input i JOIN pair ON pair.id = i.symbol_id
    ON CONFLICT DO NOTHING RETURNING symbol_id, open_time
),
adv AS (
    UPDATE symbols SET last_candle_time = greatest(coalesce(last_candle_time, ins.open_time), ins.open_time)
    FROM ins WHERE symbols.id = ins.symbol_id RETURNING symbols.id
),
book AS (
    INSERT INTO top_of_book (symbol_id, minute, bid_price, bid_qty, ask_price, ask_qty, derived)
    SELECT b.* FROM unnest({_unnest(_BOOK_TYPES, _BOOK_FIRST)})
        AS b(symbol_id, minute, bid_price, bid_qty, ask_price, ask_qty, derived)
    JOIN pair ON pair.id = b.symbol_id
    ON CONFLICT (symbol_id, minute) DO UPDATE SET
        bid_price = EXCLUDED.bid_price, bid_qty = EXCLUDED.bid_qty,
        ask_price = EXCLUDED.ask_price, ask_qty = EXCLUDED.ask_qty, derived = EXCLUDED.derived
    RETURNING 1
)
SELECT i.symbol_id, pair.id IS NOT NULL AS known, adv.id IS NOT NULL AS inserted,
       CASE WHEN adv.id IS NOT NULL THEN pg_notify(${_CHANNEL}, json_build_object(
           'symbol_id', i.symbol_id, 'symbol', pair.symbol, 'open_time', i.open_ms, 'count', 1)::text)
       END AS announced
FROM input i LEFT JOIN pair ON pair.id = i.symbol_id LEFT JOIN adv ON adv.id = i.symbol_id
"""


class UnknownPair(LookupError):
    """The candle's pair is not in ``symbols``."""


@dataclass
class _Entry:
    symbol_id: int
    candle: Candle
    top: BookTop | None
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit:
    """One statement for the live candles handed in together; ``write`` answers each pair alone."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[_Entry] = []
        self._leader: asyncio.Task | None = None
        self.statements = 0  # batches sent (their sizes are what grouping saves)

    async def write(self, symbol_id: int, candle: Candle, top: BookTop | None = None) -> int:
        """Store one closed candle (and its minute's sane top of book); 1 if it was new, else 0.

        Raises :class:`UnknownPair`, ``asyncpg.CheckViolationError`` for this candle, or the
        connection's error for the whole batch."""
        entry = _Entry(symbol_id, candle, top)
        self._waiting.append(entry)
        if self._leader is None or self._leader.done():
            self._leader = asyncio.get_running_loop().create_task(self._lead())
        return await entry.done

    async def _lead(self) -> None:
        """Send batches until nothing waits; what arrives during a statement leaves with the next."""
        await asyncio.sleep(0)  # the candles of one burst are handed in during this turn
        while self._waiting:
            batch = self._next_batch()
            try:
                await self._send(batch)
            except asyncpg.CheckViolationError:
                for entry in batch:  # find the candle at fault; the others land
                    await self._send([entry])
            except BaseException as exc:
                for entry in batch:
                    if not entry.done.done():
                        entry.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    def _next_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        seen: set[int] = set()
        later: list[_Entry] = []
        for entry in self._waiting:
            if entry.symbol_id in seen or len(batch) >= self.max_batch:
                later.append(entry)  # a pair's next candle waits for its previous one
            else:
                seen.add(entry.symbol_id)
                batch.append(entry)
        self._waiting = later
        return batch

    async def _send(self, batch: list[_Entry]) -> None:
        """One statement for the batch; each entry learns its own outcome."""
        try:
            async with self.db.raw() as conn:
                rows = await conn.fetch(_GROUP_INSERT, *_columns(batch), CANDLES_CHANNEL)
        except asyncpg.CheckViolationError as exc:
            if len(batch) > 1:
                raise
            batch[0].done.set_exception(exc)
            return
        self.statements += 1
        outcome = {row["symbol_id"]: row for row in rows}
        for entry in batch:
            row = outcome[entry.symbol_id]
            if not row["known"]:
                entry.done.set_exception(UnknownPair(entry.symbol_id))
            else:
                entry.done.set_result(int(row["inserted"]))


def _columns(batch: list[_Entry]) -> list[list]:
    """The statement's arrays: the candles' columns, then their tops of book."""
    candles = [e.candle for e in batch]
    books = [(e.symbol_id, e.top) for e in batch if e.top is not None]
    return [
        [e.symbol_id for e in batch],
        [ms_to_dt(c.open_time) for c in candles],
        [c.open for c in candles],
        [c.high for c in candles],
        [c.low for c in candles],
        [c.close for c in candles],
        [c.volume for c in candles],
        [ms_to_dt(c.close_time) for c in candles],
        [c.quote_volume for c in candles],
        [c.trades for c in candles],
        [c.taker_buy_base for c in candles],
        [c.taker_buy_quote for c in candles],
        [c.provenance.value for c in candles],
        [",".join(c.derived_fields) for c in candles],
        [c.open_time for c in candles],
        [sid for sid, _ in books],
        [ms_to_dt(t.minute) for _, t in books],
        [t.bid_price for _, t in books],
        [t.bid_qty for _, t in books],
        [t.ask_price for _, t in books],
        [t.ask_qty for _, t in books],
        [t.derived for _, t in books],
    ]
