"""Bulk writes of candles and top of book, idempotent and announced with NOTIFY.

Candles are validated as numpy columns (:mod:`cryptocast.sql.rowcheck`) and encoded into
PostgreSQL's binary COPY format by numpy (:mod:`cryptocast.sql.bulkcopy`). A batch past the pair's last stored minute is copied straight into
``price_history``; one that may overlap what is stored goes to a per-connection temporary table,
then one ``INSERT … ON CONFLICT DO NOTHING`` into ``price_history``: writing the same candles
twice changes nothing. In the same transaction the writer moves the pair's ``last_candle_time``
forward and sends ``NOTIFY cryptocast_candles`` naming the pair and its newest closed minute, so
consumers downstream (the live predictor) learn of new data without polling and without being
called. A single live candle takes the group commit (:mod:`cryptocast.sql.groupcommit`): one
statement with the candles other pairs sharing the writer hand in at the same time.

Bad rows are rejected before they reach the database, each with its reason; the good rows of the
same batch still land.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import numpy as np

from cryptocast.records import BookTop, Candle, CandleBlock, ms_to_dt
from cryptocast.sql.bulkcopy import CANDLE_COLUMNS, STAGING_TABLE, copy_data, copy_into, row_count, stage
from cryptocast.sql.database import Database
from cryptocast.sql.groupcommit import GroupCommit, UnknownPair
from cryptocast.sql.rowcheck import RejectedRow, WriteResult, check_candle, check_quote, sane
from cryptocast.sql.schema import CANDLES_CHANNEL

log = logging.getLogger(__name__)

_COLUMN_LIST = ", ".join(CANDLE_COLUMNS)
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
_UPSERT_BOOK = """
INSERT INTO top_of_book (symbol_id, minute, bid_price, bid_qty, ask_price, ask_qty, derived)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (symbol_id, minute) DO UPDATE SET
    bid_price = EXCLUDED.bid_price, bid_qty = EXCLUDED.bid_qty,
    ask_price = EXCLUDED.ask_price, ask_qty = EXCLUDED.ask_qty, derived = EXCLUDED.derived
"""


class WriteError(RuntimeError):
    """The database refused a batch; the message names the pair and the reason."""


class CandleWriter:
    """The one way candles enter the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.group = GroupCommit(db)  # single live candles, grouped across the pairs sharing this writer

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

    async def write(
        self, symbol_id: int, candles: Sequence[Candle] | CandleBlock, top: BookTop | None = None
    ) -> WriteResult:
        """Store closed candles for one pair; idempotent, and announced when anything is new.

        ``top``, a sane top of book of the one candle's minute, is stored in the same statement."""
        result = WriteResult()
        block = self.prepare(candles, result)
        for rejected in result.rejected:
            log.warning("candle rejected: %s", rejected, extra={"symbol_id": symbol_id})
        if not len(block):
            return result
        if len(block) == 1:
            return await self._write_one(symbol_id, block, result, top)
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

    async def _write_one(
        self, symbol_id: int, block: CandleBlock, result: WriteResult, top: BookTop | None
    ) -> WriteResult:
        """The live path: one candle, sent with whatever other pairs hand in at the same time."""
        c = block.candle(0)
        if top is not None and (top.minute != c.open_time or check_quote(top) is not None):
            raise ValueError("only a sane top of book of the candle's own minute goes with it")
        try:
            result.inserted = await self.group.write(symbol_id, c, top)
        except asyncpg.CheckViolationError as exc:
            raise WriteError(
                f"pair {symbol_id}: a candle broke {exc.constraint_name}: {exc.detail or exc}"
            ) from None
        except UnknownPair:
            raise WriteError(
                f"no pair with id {symbol_id}: add the pair before writing its candles"
            ) from None
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
                    return row_count(await copy_into(conn, "price_history", data))
            except asyncpg.UniqueViolationError:
                log.info("batch overlapped stored candles; merging", extra={"symbol_id": symbol_id})
        await stage(conn, data)
        return row_count(await conn.execute(_MERGE))

    async def replace(self, symbol_id: int, candles: Sequence[Candle]) -> int:
        """Overwrite stored candles with corrected ones (a REST value that disagreed with the socket's)."""
        block = self.prepare(candles, WriteResult())
        if not len(block):
            return 0
        async with self.db.raw() as conn, conn.transaction():
            await stage(conn, copy_data(symbol_id, block))
            return row_count(await conn.execute(_REPLACE))

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
