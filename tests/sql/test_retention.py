"""Retention removes only what is older than the configured age, and nothing by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from cryptocast.records import BookTop
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.retention import prune
from cryptocast.sql.schema import models, predictions, top_of_book
from cryptocast.sql.writer import CandleWriter

NOW = datetime(2025, 3, 20, tzinfo=UTC)
FUTURE = timedelta(days=3650)


async def _seed(db: Database, now: datetime = NOW) -> None:
    sid = await add_symbol(db, "ETHUSDT", "ETH", "USDT")
    ages = [timedelta(days=d) for d in (1, 5, 40)]
    tops = [BookTop(int((now - a).timestamp() * 1000), 10.0, 1.0, 10.1, 1.0) for a in ages]
    await CandleWriter(db).write_book(sid, tops)
    async with db.begin() as conn:
        mid = (
            await conn.execute(
                insert(models).values(symbol_id=sid, kind="persistence", version=1).returning(models.c.id)
            )
        ).scalar()
        for a in ages:
            await conn.execute(
                insert(predictions).values(
                    symbol_id=sid, model_id=mid, origin_time=now - a, horizon=1, predicted=10.0, served=True
                )
            )


async def _count(db: Database, table) -> int:
    async with db.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_default_keeps_everything(db: Database) -> None:
    await _seed(db)
    pruned = await prune(db, NOW, None, None)
    assert (pruned.predictions, pruned.top_of_book) == (0, 0)
    assert await _count(db, predictions) == 3 and await _count(db, top_of_book) == 3


async def test_prunes_by_age(db: Database) -> None:
    await _seed(db)
    pruned = await prune(db, NOW, predictions_days=30, top_of_book_days=3)
    assert (pruned.predictions, pruned.top_of_book) == (1, 2)
    assert await _count(db, predictions) == 2 and await _count(db, top_of_book) == 1


async def test_a_clock_ahead_of_the_wall_clock_prunes_nothing_recent(db: Database) -> None:
    wall = datetime.now(UTC)
    await _seed(db, wall)  # rows of 1, 5 and 40 days ago by the wall clock
    pruned = await prune(db, wall + FUTURE, predictions_days=30, top_of_book_days=3)
    assert (pruned.predictions, pruned.top_of_book) == (1, 2)
    assert await _count(db, predictions) == 2 and await _count(db, top_of_book) == 1


async def test_a_negative_age_is_refused_and_deletes_nothing(db: Database) -> None:
    await _seed(db)
    with pytest.raises(ValueError, match="retention of top_of_book must be 0 days or more, not -1"):
        await prune(db, NOW, predictions_days=30, top_of_book_days=-1)
    assert await _count(db, predictions) == 3 and await _count(db, top_of_book) == 3
