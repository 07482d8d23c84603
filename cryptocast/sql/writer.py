"""Bulk writes of candles and top of book, idempotent and announced with NOTIFY.

Candles go through asyncpg COPY into a per-connection temporary table, then one
``INSERT … ON CONFLICT DO NOTHING`` into ``price_history``: writing the same candles twice changes
nothing. In the same transaction the writer moves the pair's ``last_candle_time`` forward and sends
``NOTIFY cryptocast_candles`` naming the pair and its newest closed minute, so consumers downstream
(the live predictor) learn of new data without polling and without being called.

Bad rows are rejected before they reach the database, each with its reason; the good rows of the
same batch still land.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

import asyncpg

from cryptocast.records import MINUTE_MS, BookTop, Candle
from cryptocast.sql.database import Database
from cryptocast.sql.schema import CANDLES_CHANNEL

log = logging.getLogger(__name__)

CANDLE_COLUMNS = (
    "symbol_id",
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
    "provenance",
    "derived_fields",
)
# Staging keeps the exchange's integer milliseconds: converting to timestamptz in SQL is far cheaper
# than building a Python datetime per row.
_STAGED = CANDLE_COLUMNS[1:]
_row_of = attrgetter(*_STAGED)
STAGING_TABLE = "cryptocast_candles_in"
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (
    open_time bigint, open float8, high float8, low float8, close float8, volume float8,
    close_time bigint, quote_volume float8, trades bigint, taker_buy_base float8,
    taker_buy_quote float8, provenance text, derived_fields text[]
) ON COMMIT DELETE ROWS
"""
_INSERT = f"""
INSERT INTO price_history ({", ".join(CANDLE_COLUMNS)})
SELECT $1, to_timestamp(open_time / 1000.0), open, high, low, close, volume,
       to_timestamp(close_time / 1000.0), quote_volume, trades, taker_buy_base, taker_buy_quote,
       provenance, derived_fields
FROM {STAGING_TABLE}
"""
# Speculative insertion (ON CONFLICT) costs ~50 % more than a plain insert, so it is used only
# when the batch may overlap what is stored.
_MERGE = _INSERT + "ON CONFLICT DO NOTHING"
_REPLACE = (
    _INSERT
    + "ON CONFLICT (symbol_id, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in CANDLE_COLUMNS[2:])
    + ", ingested_at = now()"
)
# Locks the pair's row: writers of one pair take turns, and an unknown pair fails before any COPY.
_LOCK_PAIR = "SELECT symbol, last_candle_time FROM symbols WHERE id = $1 FOR UPDATE"
_ADVANCE = "UPDATE symbols SET last_candle_time = greatest(coalesce(last_candle_time, $2), $2) WHERE id = $1"
INF = math.inf
_UPSERT_BOOK = """
INSERT INTO top_of_book (symbol_id, minute, bid_price, bid_qty, ask_price, ask_qty, derived)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (symbol_id, minute) DO UPDATE SET
    bid_price = EXCLUDED.bid_price, bid_qty = EXCLUDED.bid_qty,
    ask_price = EXCLUDED.ask_price, ask_qty = EXCLUDED.ask_qty, derived = EXCLUDED.derived
"""


class WriteError(RuntimeError):
    """The database refused a batch; the message names the pair and the reason."""


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


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def check_candle(c: Candle) -> str | None:
    """Why a candle must not be stored, or None when it is sane."""
    if (  # the common case in one chained comparison (NaN fails every comparison)
        0 < c.low <= c.open <= c.high < INF
        and c.low <= c.close <= c.high
        and 0 <= c.volume < INF
        and 0 <= c.quote_volume < INF
        and 0 <= c.taker_buy_base < INF
        and 0 <= c.taker_buy_quote < INF
        and c.trades >= 0
        and c.close_time > c.open_time
        and not c.open_time % MINUTE_MS
    ):
        return None
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
    if not (c.low <= c.open <= c.high and c.low <= c.close <= c.high):
        return f"open {c.open} / close {c.close} outside [low {c.low}, high {c.high}]"
    if min(c.volume, c.quote_volume, c.taker_buy_base, c.taker_buy_quote) < 0 or c.trades < 0:
        return "negative volume or trade count"
    return None


class CandleWriter:
    """The one way candles enter the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def prepare(candles: Sequence[Candle], result: WriteResult) -> list[tuple]:
        """Validate and flatten candles into staging rows; rejected rows are recorded on ``result``."""
        records = []
        for i, c in enumerate(candles):
            reason = check_candle(c)
            if reason is None:
                records.append(_row_of(c))
            else:
                result.rejected.append(RejectedRow(i, c.open_time, reason))
        result.received += len(candles)
        if records:
            result.newest_open_time = max(r[0] for r in records)
        return records

    async def write(self, symbol_id: int, candles: Sequence[Candle]) -> WriteResult:
        """Store closed candles for one pair; idempotent, and announced when anything is new."""
        result = WriteResult()
        records = self.prepare(candles, result)
        for rejected in result.rejected:
            log.warning("candle rejected: %s", rejected, extra={"symbol_id": symbol_id})
        if not records:
            return result
        try:
            async with self.db.raw() as conn, conn.transaction():
                pair = await conn.fetchrow(_LOCK_PAIR, symbol_id)
                if pair is None:
                    raise WriteError(f"no pair with id {symbol_id}: add the pair before writing its candles")
                await conn.execute(_CREATE_STAGING)
                await conn.copy_records_to_table(STAGING_TABLE, records=records, columns=_STAGED)
                result.inserted = await self._insert(conn, symbol_id, records, pair["last_candle_time"])
                if result.inserted:
                    newest = ms_to_dt(result.newest_open_time)
                    await conn.execute(_ADVANCE, symbol_id, newest)
                    payload = {
                        "symbol_id": symbol_id,
                        "symbol": pair["symbol"],
                        "open_time": result.newest_open_time,
                        "count": result.inserted,
                    }
                    await conn.execute("SELECT pg_notify($1, $2)", CANDLES_CHANNEL, json.dumps(payload))
        except asyncpg.CheckViolationError as exc:
            raise WriteError(
                f"pair {symbol_id}: a candle broke {exc.constraint_name}: {exc.detail or exc}"
            ) from None
        return result

    @staticmethod
    async def _insert(
        conn: asyncpg.Connection, symbol_id: int, records: list[tuple], last: datetime | None
    ) -> int:
        """Plain insert for a batch past the last stored minute, merge otherwise; returns rows added."""
        if last is None or min(r[0] for r in records) > last.timestamp() * 1000:
            try:
                async with conn.transaction():  # a savepoint: a surprise overlap falls back to the merge
                    return int((await conn.execute(_INSERT, symbol_id)).rsplit(" ", 1)[1])
            except asyncpg.UniqueViolationError:
                log.info("batch overlapped stored candles; merging", extra={"symbol_id": symbol_id})
        return int((await conn.execute(_MERGE, symbol_id)).rsplit(" ", 1)[1])

    async def replace(self, symbol_id: int, candles: Sequence[Candle]) -> int:
        """Overwrite stored candles with corrected ones (a REST value that disagreed with the socket's)."""
        result = WriteResult()
        records = self.prepare(candles, result)
        if not records:
            return 0
        async with self.db.raw() as conn, conn.transaction():
            await conn.execute(_CREATE_STAGING)
            await conn.copy_records_to_table(STAGING_TABLE, records=records, columns=_STAGED)
            status = await conn.execute(_REPLACE, symbol_id)
        return int(status.rsplit(" ", 1)[1])

    async def write_book(self, symbol_id: int, tops: Sequence[BookTop]) -> int:
        """Upsert one top-of-book row per minute (the last quote before the minute closed wins)."""
        rows = [
            (symbol_id, ms_to_dt(t.minute), t.bid_price, t.bid_qty, t.ask_price, t.ask_qty, t.derived)
            for t in tops
            if t.bid_price > 0 and t.ask_price >= t.bid_price
        ]
        if len(rows) != len(tops):
            log.warning(
                "dropped %d crossed or empty quotes", len(tops) - len(rows), extra={"symbol_id": symbol_id}
            )
        if rows:
            async with self.db.raw() as conn:
                await conn.executemany(_UPSERT_BOOK, rows)
        return len(rows)
