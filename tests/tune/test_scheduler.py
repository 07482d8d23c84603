"""The scheduler on a hand-moved exchange clock: new pairs, staggered daily slots, short history, its plan."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from cryptocast.sql import command_queue
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.schema import commands, models, symbols, training_schedule
from cryptocast.sql.writer import CandleWriter
from cryptocast.tune.scheduler import ScheduleOptions, Scheduler
from tests.tune.tune_data import btc, to_records

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


async def _pair(db, symbol: str, status: str, history_days: float, champions: tuple[str, ...] = ()) -> int:
    """A pair whose stored candles span ``history_days`` (its first and last minute are enough for that)."""
    sid = await add_symbol(db, symbol, symbol[:3], symbol[3:], status=status)
    rows = to_records(btc(history_days))
    await CandleWriter(db).write(sid, [rows[0], rows[-1]])
    async with db.begin() as conn:
        for version, kind in enumerate(champions, 1):
            await conn.execute(
                insert(models).values(symbol_id=sid, kind=kind, version=version, status="champion")
            )
    return sid


async def _open(db) -> list[tuple[str, str, str]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            select(commands.c.symbol, commands.c.kind, commands.c.payload["trigger"].astext)
            .where(commands.c.status == "pending")
            .order_by(commands.c.id)
        )
        return [tuple(r) for r in rows]


async def _plan(db, symbol: str) -> dict:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(training_schedule)
                .join(symbols, symbols.c.id == training_schedule.c.symbol_id)
                .where(symbols.c.symbol == symbol)
            )
        ).one()
    return dict(row._mapping)


async def test_new_pairs_daily_slots_and_short_history(db) -> None:
    await _pair(db, "BTCUSDT", "live", 20, ("persistence", "lstm"))
    await _pair(db, "ETHUSDT", "live", 20, ("persistence",))
    await _pair(db, "LTCBTC", "backfilling", 20)
    xrp = await _pair(db, "XRPBTC", "live", 3, ("persistence",))
    clock = FakeClock(MONDAY_MS)
    scheduler = Scheduler(db, clock, options=ScheduleOptions(daily_minute=2 * 60, stagger_minutes=20))

    async def plan_at(day: int, hour: int, minute: int = 0) -> list[tuple[str, str, str, bool]]:
        clock.at(day, hour, minute)
        return [(q.symbol, q.kind, q.trigger, q.command_id is not None) for q in await scheduler.plan()]

    # 00:00: the live pair with enough history and no LSTM trains at once; the others wait for their slots
    assert await plan_at(0, 0) == [("ETHUSDT", "retrain", "new_pair", True)]
    assert await plan_at(0, 1, 59) == []  # a new pair is queued once, whatever becomes of it
    assert await plan_at(0, 2, 0) == [("BTCUSDT", "retrain", "daily", True)]  # rank 0: 02:00
    assert await plan_at(0, 2, 15) == []
    # rank 1 at 02:20: its first training is still queued, so the slot is served by that one
    assert await plan_at(0, 2, 20) == [("ETHUSDT", "retrain", "daily", False)]
    # rank 2 at 02:40 has 3 days of history: no retrain, but its intervals are recalibrated
    assert await plan_at(0, 2, 40) == [("XRPBTC", "recalibrate", "daily", True)]
    assert await plan_at(0, 23, 0) == []  # once a day
    assert await _open(db) == [
        ("ETHUSDT", "retrain", "new_pair"),
        ("BTCUSDT", "retrain", "daily"),
        ("XRPBTC", "recalibrate", "daily"),
    ]

    # the plan is written down for readers: the next slot, what it will run, what history allows
    btc_plan, xrp_plan = await _plan(db, "BTCUSDT"), await _plan(db, "XRPBTC")
    assert (
        btc_plan["next_at"] == datetime(2025, 3, 11, 2, 0, tzinfo=UTC) and btc_plan["next_kind"] == "retrain"
    )
    assert btc_plan["needs_days"] is None and abs(btc_plan["history_days"] - 20) < 1e-6
    assert (
        xrp_plan["next_at"] == datetime(2025, 3, 11, 2, 40, tzinfo=UTC)
        and xrp_plan["next_kind"] == "recalibrate"
    )
    assert abs(xrp_plan["needs_days"] - 7) < 1e-6 and xrp_plan["note"].startswith(
        "needs 7.0 more days of history"
    )

    # the next day's slot queues again once the previous training has ended
    async with db.begin() as conn:
        await conn.execute(update(commands).values(status="done"))
    assert await plan_at(1, 2, 5) == [("BTCUSDT", "retrain", "daily", True)]
    # slots missed while nothing ran (the system was down for two days) are caught up once, not twice
    async with db.begin() as conn:
        await conn.execute(update(commands).values(status="done"))
    assert [q[0] for q in await plan_at(3, 2, 5)] == ["BTCUSDT", "ETHUSDT", "XRPBTC"]
    assert await plan_at(3, 2, 10) == []
    # the pair with short history gets enough: it trains as a new pair
    async with db.begin() as conn:
        await conn.execute(update(commands).values(status="done"))
    await CandleWriter(db).write(xrp, [to_records(btc(12))[-1]])
    assert ("XRPBTC", "retrain", "new_pair", True) in await plan_at(3, 3)


async def test_a_pair_that_turns_live_late_waits_for_its_next_slot(db) -> None:
    """Seen for the first time at 14:00, a pair with an LSTM is not retrained for this morning's slot."""
    await _pair(db, "BTCUSDT", "live", 20, ("persistence", "lstm"))
    clock = FakeClock(MONDAY_MS + 14 * 3_600_000)
    scheduler = Scheduler(db, clock)
    assert await scheduler.plan() == []
    clock.now_ms = MONDAY_MS + DAY_MS + 2 * 3_600_000
    assert [(q.symbol, q.trigger) for q in await scheduler.plan()] == [("BTCUSDT", "daily")]
    assert (await command_queue.open_training(db, "BTCUSDT"))["payload"][
        "slot"
    ] == "2025-03-11T02:00:00+00:00"
