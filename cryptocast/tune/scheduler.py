"""When pairs train: the one place that decides it, and writes down what it decided.

Triggers, each of which queues a training command (:mod:`cryptocast.sql.command_queue`):

- **a pair becomes ready**: it is live (backfill done), has enough history for a training and has
  never had a first training queued;
- **the daily slot**, on the exchange clock: ``daily_minute`` past midnight UTC plus
  ``stagger_minutes`` per pair (in id order), so pairs do not all train at once. A slot queues a
  retrain when the pair has enough history and a recalibration of the served intervals otherwise,
  so intervals are refitted daily either way. A slot that passes while the pair's previous training
  is still open is served by that one (at most one open training per pair);
- requests (API, CLI, dashboard) and live drift (the live predictor) queue commands of their own.

The scheduler's plan per pair (next slot, what it will run, history, how many days are missing)
goes to ``training_schedule``: readers show it, nobody computes it again. The clock is injected
(exchange milliseconds), so tests move time by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.expression import Exists

from cryptocast.records import ms_to_dt
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.schema import models, price_history, symbols, training_schedule
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.history import HistoryNeeds, days
from cryptocast.tune.predictor import LSTM, PERSISTENCE

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DEFAULT_DAILY_MINUTE = 2 * 60  # 02:00 UTC: the quietest hours of the day for most pairs
DEFAULT_STAGGER_MINUTES = 20
RETRAIN, RECALIBRATE = "retrain", "recalibrate"
NEW_PAIR, DAILY = "new_pair", "daily"
LIVE = "live"


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    daily_minute: int = DEFAULT_DAILY_MINUTE
    stagger_minutes: int = DEFAULT_STAGGER_MINUTES
    max_days: int = 30  # a training reads at most this much history

    def slots(self, now_ms: int, rank: int) -> tuple[int, int]:
        """(the newest slot at or before ``now_ms``, the one after it) of the pair ranked ``rank``."""
        offset = (self.daily_minute + rank * self.stagger_minutes) * MINUTE_MS
        latest = (now_ms - offset) // DAY_MS * DAY_MS + offset
        return latest, latest + DAY_MS


@dataclass(frozen=True, slots=True)
class PairState:
    symbol_id: int
    symbol: str
    status: str
    has_lstm: bool
    has_baseline: bool
    history_ms: int


@dataclass(frozen=True, slots=True)
class Queued:
    command_id: int | None  # None: merged into the pair's open training
    symbol: str
    kind: str
    trigger: str


def _has_champion(kind: str) -> Exists:
    return (
        select(models.c.id)
        .where(models.c.symbol_id == symbols.c.id, models.c.kind == kind, models.c.status == "champion")
        .exists()
    )


@dataclass(slots=True)
class Scheduler:
    db: Database
    clock: Callable[[], int]  # exchange time, ms
    needs: HistoryNeeds = field(default_factory=HistoryNeeds)
    options: ScheduleOptions = field(default_factory=ScheduleOptions)
    written: dict[int, tuple] = field(default_factory=dict)  # the plan last written per pair

    async def pairs(self) -> list[PairState]:
        """Every tracked pair that is not removed, in id order (the stagger order of the live ones)."""
        first, last = (
            select(func.min(price_history.c.open_time))
            .where(price_history.c.symbol_id == symbols.c.id)
            .scalar_subquery(),
            select(func.max(price_history.c.open_time))
            .where(price_history.c.symbol_id == symbols.c.id)
            .scalar_subquery(),
        )
        query = (
            select(
                symbols.c.id,
                symbols.c.symbol,
                symbols.c.status,
                _has_champion(LSTM),
                _has_champion(PERSISTENCE),
                first,
                last,
            )
            .where(symbols.c.status != "removed")
            .order_by(symbols.c.id)
        )
        out = []
        async with self.db.connect() as conn:
            for sid, symbol, status, lstm, baseline, lo, hi in await conn.execute(query):
                span = 0 if lo is None else int((hi - lo).total_seconds() * 1000) + MINUTE_MS
                out.append(
                    PairState(sid, symbol, status, lstm, baseline, min(span, self.options.max_days * DAY_MS))
                )
        return out

    async def plan(self) -> list[Queued]:
        """Queue what the triggers call for now, write every pair's plan; returns what was queued."""
        now = self.clock()
        queued: list[Queued] = []
        async with self.db.connect() as conn:
            last_slots = dict(
                (
                    await conn.execute(select(training_schedule.c.symbol_id, training_schedule.c.last_slot))
                ).all()
            )
        live = [p for p in await self.pairs() if p.status == LIVE]
        for rank, pair in enumerate(live):
            missing = self.needs.missing_ms(pair.history_ms)
            if (
                missing == 0
                and not pair.has_lstm
                and not await command_queue.ever_triggered(self.db, pair.symbol, NEW_PAIR)
            ):
                queued.append(
                    await self._queue(pair, RETRAIN, NEW_PAIR, "a new pair: backfill done, enough history")
                )
            latest, upcoming = self.options.slots(now, rank)
            handled = last_slots.get(pair.symbol_id)
            kind = RETRAIN if missing == 0 else RECALIBRATE if pair.has_baseline else None
            if handled is not None and int(handled.timestamp() * 1000) < latest and kind is not None:
                why = (
                    "the daily slot"
                    if kind == RETRAIN
                    else f"the daily slot (no retrain: {self._short(missing)})"
                )
                queued.append(await self._queue(pair, kind, DAILY, why, slot=ms_to_dt(latest).isoformat()))
            await self._write_plan(pair, upcoming, kind, latest, missing)
        return queued

    @staticmethod
    def _short(missing_ms: int) -> str:
        return f"needs {days(missing_ms):.1f} more days of history"

    async def _queue(self, pair: PairState, kind: str, trigger: str, reason: str, **payload: str) -> Queued:
        command = await command_queue.submit_training(self.db, kind, pair.symbol, trigger, reason, **payload)
        if command is not None:
            log.info("%s %s queued as command %d (%s)", kind, pair.symbol, command, reason)
        return Queued(command, pair.symbol, kind, trigger)

    async def _write_plan(
        self, pair: PairState, next_ms: int, kind: str | None, slot_ms: int, missing_ms: int
    ) -> None:
        if missing_ms:
            note = f"{self._short(missing_ms)} for a first LSTM (minimum {days(self.needs.min_history_ms):.0f} days)"
        else:
            note = None
        values = {
            "next_at": ms_to_dt(next_ms) if kind else None,
            "next_kind": kind,
            "history_days": days(pair.history_ms),
            "needs_days": days(missing_ms) if missing_ms else None,
            "note": note,
            "updated_at": func.now(),
        }
        # Planned every few seconds, written when it changes (history in steps of a hundredth of a day).
        key = (next_ms, kind, slot_ms, round(days(pair.history_ms), 2), note)
        if self.written.get(pair.symbol_id) == key:
            return
        statement = pg_insert(training_schedule).values(
            symbol_id=pair.symbol_id, last_slot=ms_to_dt(slot_ms), **values
        )
        # A pair seen for the first time starts from the newest slot: its next one is the next one.
        statement = statement.on_conflict_do_update(
            index_elements=["symbol_id"], set_=values | {"last_slot": ms_to_dt(slot_ms)}
        )
        async with self.db.begin() as conn:
            await conn.execute(statement)
        self.written[pair.symbol_id] = key
