"""Group commit: live candles of many pairs handed in together leave in one statement, and each pair
still gets its own answer: stored, already there, refused, or unknown."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import asyncpg
import pytest
from sqlalchemy import select

from bench.lib.writer import synthetic_candles
from cryptocast.records import MINUTE_MS, BookTop
from cryptocast.sql.database import Database
from cryptocast.sql.groupcommit import GroupCommit, UnknownPair
from cryptocast.sql.queries import add_symbol, candle_count
from cryptocast.sql.schema import CANDLES_CHANNEL, symbols, top_of_book
from cryptocast.sql.writer import CandleWriter

START = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS
PAIRS = 12


@pytest.fixture
async def pairs(db: Database) -> list[int]:
    return [await add_symbol(db, f"P{i:02d}USDT", f"P{i:02d}", "USDT") for i in range(PAIRS)]


async def test_a_minute_of_many_pairs_is_one_statement_with_one_notice_each(
    db: Database, pairs: list[int]
) -> None:
    writer = CandleWriter(db)
    (candle,) = synthetic_candles(1, start_ms=START)
    tops = [BookTop(START, candle.close - 0.5, float(i), candle.close + 0.5, 1.0) for i in range(PAIRS)]
    notices: asyncio.Queue[str] = asyncio.Queue()
    async with db.raw() as listener:
        await listener.add_listener(CANDLES_CHANNEL, lambda *args: notices.put_nowait(args[3]))
        results = await asyncio.gather(
            *(writer.write(sid, [candle], top) for sid, top in zip(pairs, tops, strict=True))
        )
        payloads = [json.loads(await asyncio.wait_for(notices.get(), 5)) for _ in pairs]
    assert [r.inserted for r in results] == [1] * PAIRS
    assert writer.group.statements == 1
    assert sorted(p["symbol_id"] for p in payloads) == pairs
    assert all(p["open_time"] == START and p["count"] == 1 for p in payloads)
    assert {p["symbol"] for p in payloads} == {f"P{i:02d}USDT" for i in range(PAIRS)}
    async with db.connect() as conn:
        marks = (await conn.execute(select(symbols.c.last_candle_time))).scalars().all()
        books = (await conn.execute(select(top_of_book.c.symbol_id, top_of_book.c.bid_qty))).all()
    assert {m.timestamp() * 1000 for m in marks} == {START}
    assert sorted(books) == [(sid, float(i)) for i, sid in enumerate(pairs)]


async def test_the_same_minute_again_is_stored_once_and_announced_once(
    db: Database, pairs: list[int]
) -> None:
    writer = CandleWriter(db)
    (candle,) = synthetic_candles(1, start_ms=START)
    await asyncio.gather(*(writer.write(sid, [candle]) for sid in pairs))
    again = await asyncio.gather(*(writer.write(sid, [candle]) for sid in pairs))
    assert [r.inserted for r in again] == [0] * PAIRS
    assert [await candle_count(db, sid) for sid in pairs] == [1] * PAIRS


async def test_a_pairs_second_candle_waits_for_its_first_and_both_land_in_order(
    db: Database, pairs: list[int]
) -> None:
    group = GroupCommit(db)
    first, second = synthetic_candles(2, start_ms=START)
    sid = pairs[0]
    answers = await asyncio.gather(
        group.write(sid, second), group.write(sid, first), group.write(pairs[1], first)
    )
    assert answers == [1, 1, 1]
    assert group.statements == 2, "one pair's two candles never share a statement"
    async with db.connect() as conn:
        mark = (
            await conn.execute(select(symbols.c.last_candle_time).where(symbols.c.id == sid))
        ).scalar_one()
    assert mark.timestamp() * 1000 == START + MINUTE_MS, "the newer minute stays the pair's last"


async def test_a_candle_the_schema_refuses_fails_alone(db: Database, pairs: list[int]) -> None:
    """Past the writer's checks, the schema still refuses a bad row: only its pair hears of it."""
    group = GroupCommit(db)
    (good,) = synthetic_candles(1, start_ms=START)
    bad = dataclasses.replace(good, low=good.high * 2)
    answers = await asyncio.gather(
        *(group.write(sid, bad if sid == pairs[3] else good) for sid in pairs), return_exceptions=True
    )
    refused = answers[3]
    assert isinstance(refused, asyncpg.CheckViolationError) and refused.constraint_name.endswith("ohlc_order")
    assert answers[:3] + answers[4:] == [1] * (PAIRS - 1)
    assert [await candle_count(db, sid) for sid in pairs] == [0 if sid == pairs[3] else 1 for sid in pairs]


async def test_an_unknown_pair_fails_alone(db: Database, pairs: list[int]) -> None:
    group = GroupCommit(db)
    (candle,) = synthetic_candles(1, start_ms=START)
    answers = await asyncio.gather(
        group.write(999, candle), group.write(pairs[0], candle), return_exceptions=True
    )
    assert isinstance(answers[0], UnknownPair) and answers[1] == 1
    assert group.statements == 1


async def test_a_lost_connection_fails_the_whole_batch_and_the_next_one_lands(
    db: Database, pairs: list[int]
) -> None:
    """Each pair holds its own candle on failure (heldwrites.py); the group itself carries nothing over."""
    group = GroupCommit(db)
    (candle,) = synthetic_candles(1, start_ms=START)
    async with db.raw() as conn:
        await conn.execute("ALTER TABLE price_history RENAME TO price_history_away")
        try:
            answers = await asyncio.gather(
                *(group.write(sid, candle) for sid in pairs), return_exceptions=True
            )
        finally:
            await conn.execute("ALTER TABLE price_history_away RENAME TO price_history")
    assert all(isinstance(a, asyncpg.UndefinedTableError) for a in answers)
    assert await asyncio.gather(*(group.write(sid, candle) for sid in pairs)) == [1] * PAIRS
