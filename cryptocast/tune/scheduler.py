"""When pairs retrain: daily at a set UTC minute on the exchange clock, on a new pair, on request.

:class:`Scheduler` holds the decisions and is driven by an injected clock (milliseconds on the
exchange clock), so tests can move time by hand; :func:`scheduler_actor` runs it as a Ray actor that
polls. Pairs are staggered so they never train at once, one training runs at a time (training must
not starve ingestion), and a pair is never retrained sooner than its last training took.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from cryptocast.sql.database import Database
from cryptocast.sql.schema import commands, models, symbols
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.predictor import LSTM

if TYPE_CHECKING:  # the pipeline pulls in Ray Tune: imported where training runs, not here
    from cryptocast.tune.pipeline import TrainOptions

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DEFAULT_DAILY_MINUTE = 2 * 60  # 02:00 UTC: the quietest hours of the day for most pairs
DEFAULT_STAGGER_MINUTES = 20
POLL_SECONDS = 30.0
SCHEDULER_CPUS = 0.02  # like the ingestion actors: a reservation, not a core
LIVE = "live"


@dataclass(frozen=True, slots=True)
class Job:
    symbol_id: int
    symbol: str
    reason: str
    command_id: int | None = None


@dataclass(slots=True)
class Scheduler:
    """Decides which pair trains next and runs it; ``train(symbol_id, symbol)`` does the work."""

    db: Database
    train: Callable[[int, str], Awaitable[object]]
    clock: Callable[[], int]
    daily_minute: int = DEFAULT_DAILY_MINUTE
    stagger_minutes: int = DEFAULT_STAGGER_MINUTES
    last_start: dict[int, int] = field(default_factory=dict)  # exchange ms a pair's last training began
    last_duration: dict[int, int] = field(default_factory=dict)
    attempted: set[int] = field(default_factory=set)

    def slot(self, day_start_ms: int, rank: int) -> int:
        """Exchange time of a pair's daily retrain: the daily minute plus its stagger."""
        return day_start_ms + (self.daily_minute + rank * self.stagger_minutes) * MINUTE_MS

    async def _live_pairs(self) -> list[tuple[int, str, bool]]:
        """(id, symbol, has an LSTM) of every live pair, in id order (the stagger order)."""
        has_lstm = select(models.c.id).where(models.c.symbol_id == symbols.c.id, models.c.kind == LSTM).exists()
        query = select(symbols.c.id, symbols.c.symbol, has_lstm).where(symbols.c.status == LIVE).order_by(symbols.c.id)
        async with self.db.connect() as conn:
            return [tuple(r) for r in await conn.execute(query)]

    async def _claim_commands(self) -> list[Job]:
        """Pending ``retrain`` commands, marked running so no other scheduler takes them."""
        async with self.db.begin() as conn:
            rows = await conn.execute(
                update(commands)
                .where(commands.c.kind == "retrain", commands.c.status == "pending")
                .values(status="running", started_at=func.now())
                .returning(commands.c.id, commands.c.symbol)
            )
            claimed = list(rows)
            if not claimed:
                return []
            ids = dict((await conn.execute(select(symbols.c.symbol, symbols.c.id))).all())
        return [Job(ids.get(symbol, -1), symbol, f"command {cid}", cid) for cid, symbol in claimed]

    async def due(self) -> list[Job]:
        """Jobs to run now, commands first, then new pairs, then daily slots that have passed."""
        now = self.clock()
        jobs = await self._claim_commands()
        day_start = now - now % DAY_MS
        for rank, (sid, symbol, has_lstm) in enumerate(await self._live_pairs()):
            if any(j.symbol_id == sid for j in jobs):
                continue
            if not has_lstm and sid not in self.attempted:
                jobs.append(Job(sid, symbol, "new pair: backfill complete and no LSTM yet"))
                continue
            slot = self.slot(day_start, rank)
            last = self.last_start.get(sid)
            if last is None and has_lstm:
                # Seen for the first time with a model already: its next slot is the next one.
                self.last_start[sid] = now
                continue
            too_soon = last is not None and now - last < self.last_duration.get(sid, 0)
            if now >= slot and (last is None or last < slot) and not too_soon:
                jobs.append(Job(sid, symbol, "daily retrain"))
        return jobs

    async def run_job(self, job: Job) -> None:
        started = self.clock()
        self.attempted.add(job.symbol_id)
        self.last_start[job.symbol_id] = started
        error = None
        try:
            if job.symbol_id < 0:
                raise LookupError(f"unknown pair {job.symbol!r}")
            await self.train(job.symbol_id, job.symbol)
        except Exception as exc:  # a failed pair must not stop the others
            error = f"{type(exc).__name__}: {exc}"
            log.exception("training %s failed (%s)", job.symbol, job.reason)
        self.last_duration[job.symbol_id] = max(self.clock() - started, 0)
        if job.command_id is not None:
            async with self.db.begin() as conn:
                await conn.execute(
                    update(commands)
                    .where(commands.c.id == job.command_id)
                    .values(status="failed" if error else "done", finished_at=func.now(), error=error)
                )

    async def tick(self) -> list[Job]:
        """Run every due job, one after another; returns what ran."""
        jobs = await self.due()
        for job in jobs:
            await self.run_job(job)
        return jobs

    async def run_forever(self, poll_seconds: float = POLL_SECONDS) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(poll_seconds)


def scheduler_actor():  # noqa: ANN201 - a Ray actor class
    """The scheduler as a Ray actor: one per cluster, a sliver of a CPU reserved (it mostly waits;
    the trials it starts reserve their own fractions)."""
    import ray

    @ray.remote(num_cpus=SCHEDULER_CPUS)
    class SchedulerActor:
        def __init__(
            self,
            database_url: str,
            model_store: str,
            storage: str,
            clock: Callable[[], int],
            options: TrainOptions | None = None,
            **schedule: int,
        ) -> None:
            from cryptocast.tune.pipeline import TrainOptions, train_pair
            from cryptocast.tune.registry import ModelStore

            self.db = Database(database_url)
            store = ModelStore(model_store)
            train_options = options or TrainOptions()

            async def train(sid: int, symbol: str) -> object:
                return await train_pair(self.db, store, sid, train_options, Path(storage))

            self.scheduler = Scheduler(self.db, train, clock, **schedule)

        async def run(self, poll_seconds: float = POLL_SECONDS) -> None:
            await self.scheduler.run_forever(poll_seconds)

        async def tick(self) -> list[Job]:
            return await self.scheduler.tick()

        async def close(self) -> None:
            await self.db.dispose()

    return SchedulerActor
