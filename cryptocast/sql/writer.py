"""Bulk writes of candles and top of book, idempotent and announced with NOTIFY.

Candles are validated as numpy columns and encoded into PostgreSQL's binary COPY format by numpy
(no Python object per row). A batch past the pair's last stored minute is copied straight into
``price_history``; one that may overlap what is stored goes to a per-connection temporary table,
then one ``INSERT … ON CONFLICT DO NOTHING`` into ``price_history``: writing the same candles
twice changes nothing. In the same transaction the writer moves the pair's ``last_candle_time``
forward and sends ``NOTIFY cryptocast_candles`` naming the pair and its newest closed minute, so
consumers downstream (the live predictor) learn of new data without polling and without being
called.

Bad rows are rejected before they reach the database, each with its reason; the good rows of the
same batch still land.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import numpy as np

from cryptocast.records import MINUTE_MS, BookTop, Candle, CandleBlock, Kind
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
_COLUMN_LIST = ", ".join(CANDLE_COLUMNS)
STAGING_TABLE = "cryptocast_candles_stage"
_CREATE_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGING_TABLE} (LIKE price_history INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
_FROM_STAGING = f"INSERT INTO price_history ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {STAGING_TABLE} "
_MERGE = _FROM_STAGING + "ON CONFLICT DO NOTHING"
_REPLACE = (
    _FROM_STAGING
    + "ON CONFLICT (symbol_id, open_time) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in CANDLE_COLUMNS[2:])
    + ", ingested_at = now()"
)
# Locks the pair's row: writers of one pair take turns, and an unknown pair fails before any COPY.
_LOCK_PAIR = "SELECT symbol, last_candle_time FROM symbols WHERE id = $1 FOR UPDATE"
_ADVANCE = "UPDATE symbols SET last_candle_time = greatest(coalesce(last_candle_time, $2), $2) WHERE id = $1"
# One live candle in one statement (one round trip, its own transaction): lock the pair, insert,
# advance, announce. COPY's per-batch overhead is a dozen round trips, which dominate the latency of
# a single candle when many pairs close the same minute on a busy machine.
_INSERT_ONE = f"""
WITH pair AS (SELECT id, symbol FROM symbols WHERE id = $1 FOR UPDATE),
ins AS (
    INSERT INTO price_history ({_COLUMN_LIST})
    SELECT pair.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 FROM pair
    ON CONFLICT DO NOTHING RETURNING symbol_id
),
adv AS (
    UPDATE symbols SET last_candle_time = greatest(coalesce(last_candle_time, $2), $2)
    FROM ins WHERE symbols.id = ins.symbol_id RETURNING symbols.symbol
)
SELECT (SELECT symbol FROM pair) AS symbol,
       (SELECT count(*) FROM adv) AS inserted,
       (SELECT pg_notify($15, json_build_object(
            'symbol_id', $1::int, 'symbol', adv.symbol, 'open_time', $16::bigint, 'count', 1)::text) FROM adv)
"""
INF = math.inf
# No traded price comes near this (Binance's largest prices are below 10^7): a price above it is a
# broken feed, refused like any other insane row rather than stored to skew every model downstream.
MAX_PRICE = 1e12
# Binary COPY: a fixed header and trailer; timestamps are microseconds since 2000-01-01 UTC.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH_MS = 946_684_800_000
_TEXT_OID = 25
# price_history's fixed-width columns after symbol_id, with their binary COPY types.
_FIXED = (
    ("open_time", ">i8"),
    ("open", ">f8"),
    ("high", ">f8"),
    ("low", ">f8"),
    ("close", ">f8"),
    ("volume", ">f8"),
    ("close_time", ">i8"),
    ("quote_volume", ">f8"),
    ("trades", ">i8"),
    ("taker_buy_base", ">f8"),
    ("taker_buy_quote", ">f8"),
)
_TIMES = ("open_time", "close_time")
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


def _text_array(values: tuple[str, ...]) -> bytes:
    """A one-dimensional ``text[]`` in PostgreSQL's binary array format."""
    if not values:
        return struct.pack(">iii", 0, 0, _TEXT_OID)
    head = struct.pack(">iiiii", 1, 0, _TEXT_OID, len(values), 1)
    return head + b"".join(struct.pack(">i", len(v.encode())) + v.encode() for v in values)


def _copy_rows(symbol_id: int, b: CandleBlock, kind: Kind) -> bytes:
    """Binary COPY tuples of ``price_history`` for rows of one kind: fixed width, so one numpy record each."""
    provenance, derived = kind[0].value.encode(), _text_array(kind[1])
    layout = [("n", ">i2"), ("symbol_id_len", ">i4"), ("symbol_id", ">i4")]
    for name, kind_code in _FIXED:
        layout += [(f"{name}_len", ">i4"), (name, kind_code)]
    layout += [("provenance_len", ">i4"), ("provenance", f"V{len(provenance)}")]
    layout += [("derived_len", ">i4"), ("derived", f"V{len(derived)}")]
    rows = np.empty(len(b), np.dtype(layout))
    rows["n"] = len(CANDLE_COLUMNS)
    rows["symbol_id_len"], rows["symbol_id"] = 4, symbol_id
    for name, _ in _FIXED:
        rows[f"{name}_len"] = 8
        column = getattr(b, name)
        rows[name] = (column - _PG_EPOCH_MS) * 1000 if name in _TIMES else column
    rows["provenance_len"], rows["provenance"] = len(provenance), np.void(provenance)
    rows["derived_len"], rows["derived"] = len(derived), np.void(derived)
    return rows.tobytes()


def copy_data(symbol_id: int, b: CandleBlock) -> bytes:
    """The whole binary COPY stream of ``b`` as rows of ``price_history`` for ``symbol_id``."""
    if len(b.kinds) == 1:
        parts = [_copy_rows(symbol_id, b, b.kinds[0])]
    else:
        parts = [_copy_rows(symbol_id, b[b.kind == k], kind) for k, kind in enumerate(b.kinds)]
    return b"".join((_COPY_HEADER, *parts, _COPY_TRAILER))


class CandleWriter:
    """The one way candles enter the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def prepare(candles: Sequence[Candle] | CandleBlock, result: WriteResult) -> CandleBlock:
        """Validate candles into the block of good rows; rejected rows are recorded on ``result``."""
        block = candles if isinstance(candles, CandleBlock) else CandleBlock.from_candles(candles)
        ok = sane(block)
        result.received += len(block)
        if not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                candle = block.candle(i)
                reason = check_candle(candle)
                assert reason is not None, "sane() and check_candle() disagree"
                result.rejected.append(RejectedRow(i, candle.open_time, reason))
            block = block[ok]
        if len(block):
            result.newest_open_time = int(block.open_time.max())
        return block

    async def write(self, symbol_id: int, candles: Sequence[Candle] | CandleBlock) -> WriteResult:
        """Store closed candles for one pair; idempotent, and announced when anything is new."""
        result = WriteResult()
        block = self.prepare(candles, result)
        for rejected in result.rejected:
            log.warning("candle rejected: %s", rejected, extra={"symbol_id": symbol_id})
        if not len(block):
            return result
        if len(block) == 1:
            return await self._write_one(symbol_id, block, result)
        data = copy_data(symbol_id, block)
        try:
            async with self.db.raw() as conn, conn.transaction():
                pair = await conn.fetchrow(_LOCK_PAIR, symbol_id)
                if pair is None:
                    raise WriteError(f"no pair with id {symbol_id}: add the pair before writing its candles")
                first = int(block.open_time.min())
                result.inserted = await self._insert(conn, data, first, pair["last_candle_time"], symbol_id)
                if result.inserted:
                    assert result.newest_open_time is not None  # prepare() set it: the block is not empty
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

    async def _write_one(self, symbol_id: int, block: CandleBlock, result: WriteResult) -> WriteResult:
        c = block.candle(0)
        try:
            async with self.db.raw() as conn:
                row = await conn.fetchrow(
                    _INSERT_ONE,
                    symbol_id,
                    ms_to_dt(c.open_time),
                    c.open,
                    c.high,
                    c.low,
                    c.close,
                    c.volume,
                    ms_to_dt(c.close_time),
                    c.quote_volume,
                    c.trades,
                    c.taker_buy_base,
                    c.taker_buy_quote,
                    c.provenance.value,
                    list(c.derived_fields),
                    CANDLES_CHANNEL,
                    c.open_time,
                )
        except asyncpg.CheckViolationError as exc:
            raise WriteError(
                f"pair {symbol_id}: a candle broke {exc.constraint_name}: {exc.detail or exc}"
            ) from None
        if row["symbol"] is None:
            raise WriteError(f"no pair with id {symbol_id}: add the pair before writing its candles")
        result.inserted = row["inserted"]
        return result

    @staticmethod
    async def _insert(
        conn: asyncpg.Connection, data: bytes, first: int, last: datetime | None, symbol_id: int
    ) -> int:
        """COPY straight into ``price_history`` for a batch past the last stored minute, merge
        through staging otherwise; returns rows added."""
        if last is None or first > last.timestamp() * 1000:
            try:
                async with conn.transaction():  # a savepoint: a surprise overlap falls back to the merge
                    return _count(await _copy(conn, "price_history", data))
            except asyncpg.UniqueViolationError:
                log.info("batch overlapped stored candles; merging", extra={"symbol_id": symbol_id})
        await _stage(conn, data)
        return _count(await conn.execute(_MERGE))

    async def replace(self, symbol_id: int, candles: Sequence[Candle]) -> int:
        """Overwrite stored candles with corrected ones (a REST value that disagreed with the socket's)."""
        block = self.prepare(candles, WriteResult())
        if not len(block):
            return 0
        async with self.db.raw() as conn, conn.transaction():
            await _stage(conn, copy_data(symbol_id, block))
            return _count(await conn.execute(_REPLACE))

    async def write_book(self, symbol_id: int, tops: Sequence[BookTop]) -> WriteResult:
        """Upsert one top-of-book row per minute (the last quote before the minute closed wins).

        Insane quotes are refused one by one, each with its reason; the others land. Should the
        schema still refuse the batch, it is refused whole with the database's reason: a bad quote
        never raises."""
        result = WriteResult(received=len(tops))
        rows = []
        for i, t in enumerate(tops):
            if reason := check_quote(t):
                result.rejected.append(RejectedRow(i, t.minute, reason))
            else:
                rows.append(
                    (symbol_id, ms_to_dt(t.minute), t.bid_price, t.bid_qty, t.ask_price, t.ask_qty, t.derived)
                )
        for rejected in result.rejected:
            log.warning("quote refused: %s", rejected, extra={"symbol_id": symbol_id})
        if not rows:
            return result
        try:
            async with self.db.raw() as conn, conn.transaction():
                await conn.executemany(_UPSERT_BOOK, rows)
        except asyncpg.IntegrityConstraintViolationError as exc:
            reason = f"the database refused the batch: {exc.message}"
            log.error("quotes refused: %s", reason, extra={"symbol_id": symbol_id})
            result.rejected = [RejectedRow(i, t.minute, reason) for i, t in enumerate(tops)]
            return result
        result.inserted = len(rows)
        return result


async def _copy(conn: asyncpg.Connection, table: str, data: bytes) -> str:
    # A memoryview: asyncpg would take plain bytes for a file path.
    return await conn.copy_to_table(table, source=memoryview(data), columns=CANDLE_COLUMNS, format="binary")


async def _stage(conn: asyncpg.Connection, data: bytes) -> None:
    await conn.execute(_CREATE_STAGING)
    await _copy(conn, STAGING_TABLE, data)


def _count(status: str) -> int:
    """Rows of a command status such as ``INSERT 0 5`` or ``COPY 5``."""
    return int(status.rsplit(" ", 1)[1])
