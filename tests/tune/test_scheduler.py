"""The scheduler on a fake exchange clock: daily staggered slots, new pairs at once, command rows."""

from __future__ import annotations

from sqlalchemy import insert, select, update

from cryptocast.sql.queries import add_symbol, submit_command
from cryptocast.sql.schema import commands, models, symbols
from cryptocast.tune.scheduler import Scheduler

DAY_MS = 86_400_000
MINUTE_MS = 60_000
MONDAY_MS = 1_741_564_800_000  # 2025-03-10 00:00 UTC


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def at(self, day: int, hour: int, minute: int = 0) -> None:
        self.now_ms = MONDAY_MS + day * DAY_MS + (hour * 60 + minute) * MINUTE_MS


async def test_daily_new_pair_and_command_triggers(db) -> None:  # noqa: ANN001
    a = await add_symbol(db, "BTCUSDT", "BTC", "USDT", status="live")
    await add_symbol(db, "ETHUSDT", "ETH", "USDT", status="live")
    c = await add_symbol(db, "LTCBTC", "LTC", "BTC", status="backfilling")
    async with db.begin() as conn:
        await conn.execute(insert(models).values(symbol_id=a, kind="lstm", version=1, status="champion"))
    clock = FakeClock(MONDAY_MS)
    trained: list[tuple[str, int]] = []
    durations = {"BTCUSDT": 10 * MINUTE_MS}

    async def train(sid: int, symbol: str) -> None:
        trained.append((symbol, clock()))
        clock.now_ms += durations.get(symbol, MINUTE_MS)

    scheduler = Scheduler(db, train, clock, daily_minute=2 * 60, stagger_minutes=20)

    async def tick_at(day: int, hour: int, minute: int = 0) -> list[str]:
        clock.at(day, hour, minute)
        return [(j.symbol, j.reason) for j in await scheduler.tick()]

    # 00:00: the pair without an LSTM trains at once; the one with a model waits for its slot
    assert await tick_at(0, 0) == [("ETHUSDT", "new pair: backfill complete and no LSTM yet")]
    assert await tick_at(0, 1, 59) == []
    assert await tick_at(0, 2, 0) == [("BTCUSDT", "daily retrain")]  # rank 0: 02:00
    assert await tick_at(0, 2, 15) == []
    assert await tick_at(0, 2, 20) == [("ETHUSDT", "daily retrain")]  # rank 1: staggered by 20 min
    assert await tick_at(0, 23, 0) == []  # once a day
    assert await tick_at(1, 2, 5) == [("BTCUSDT", "daily retrain")]
    # a retrain command row runs on the next tick and is marked done
    command = await submit_command(db, "retrain", "BTCUSDT")
    assert await tick_at(1, 3) == [("BTCUSDT", f"command {command}"), ("ETHUSDT", "daily retrain")]
    async with db.connect() as conn:
        assert (await conn.execute(select(commands.c.status).where(commands.c.id == command))).scalar_one() == "done"
    # backfill completes: the pair trains as soon as it is live
    async with db.begin() as conn:
        await conn.execute(update(symbols).where(symbols.c.id == c).values(status="live"))
    assert await tick_at(1, 4) == [("LTCBTC", "new pair: backfill complete and no LSTM yet")]
    # never more often than a sweep takes: a 30-hour training skips the next day's slot
    durations["BTCUSDT"] = 30 * 3_600_000
    assert await tick_at(2, 2) == [("BTCUSDT", "daily retrain")]
    assert ("BTCUSDT", "daily retrain") not in await tick_at(3, 2, 30)
    assert ("BTCUSDT", "daily retrain") in await tick_at(4, 2, 30)


async def test_a_failed_training_fails_its_command_and_spares_the_others(db) -> None:  # noqa: ANN001
    await add_symbol(db, "BTCUSDT", "BTC", "USDT", status="live")
    clock = FakeClock(MONDAY_MS)

    async def train(sid: int, symbol: str) -> None:
        raise ValueError("not enough data")

    scheduler = Scheduler(db, train, clock)
    command = await submit_command(db, "retrain", "NOSUCHPAIR")
    jobs = await scheduler.tick()
    assert {j.reason for j in jobs} == {f"command {command}", "new pair: backfill complete and no LSTM yet"}
    async with db.connect() as conn:
        row = (await conn.execute(select(commands.c.status, commands.c.error).where(commands.c.id == command))).one()
    assert row.status == "failed" and "NOSUCHPAIR" in row.error
