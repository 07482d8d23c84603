"""The training scheduler as a running service: one detached Ray actor per cluster.

:func:`start_training` is the one way it starts, from every run mode that serves predictions
(``cryptocast up``, ``cryptocast serve apply`` and the Kubernetes entrypoint, through
:func:`cryptocast.system.start_background`). The actor drives itself: its loop starts with it, so
when Ray restarts it after a crash nobody has to tell it to go on. Each turn it

1. measures the exchange clock (the replay's runs N× faster; rate limits aside, time follows it),
2. lets :class:`~cryptocast.tune.scheduler.Scheduler` queue what the triggers call for,
3. carries out rollbacks at once and runs queued trainings, ``concurrency`` at a time (1 by
   default: the resource plan of docs/training.md; a cluster's ``train`` group runs one per free
   CPU, docs/scaling.md), each in a Ray task of its own, and
4. writes a heartbeat, so the API can tell a queued command that a live scheduler will run from
   one that nothing will.

It wakes on ``NOTIFY cryptocast_commands`` (a request is picked up at once) and otherwise every
``POLL_S``. Before it claims a training while none of its own runs, it settles whatever a previous
incarnation left running.

Why a task per training: Ray Tune drives one experiment per process (its controller, callbacks
and search state are the process's), so sweeps run side by side only in processes of their own.
The task is owned by this actor: when the actor dies, Ray ends the task and its trials with it,
and the restarted actor queues the command again. A task whose process dies alone (out of memory,
a killed node) is an interrupted attempt of its command, like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import ray
from ray.exceptions import RayError

from cryptocast.actors.nodes import NAMESPACE
from cryptocast.exchange.exchangeclock import ExchangeClock, server_time
from cryptocast.logs import setup_worker_logging
from cryptocast.settings import Settings
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.notices import listen
from cryptocast.sql.schema import COMMANDS_CHANNEL
from cryptocast.sql.urlfile import read_url, write_url
from cryptocast.tune.jobs import Work, execute, recalibrate_instead
from cryptocast.tune.registry import ModelStore
from cryptocast.tune.scheduler import ScheduleOptions, Scheduler
from cryptocast.tune.sweep import lower_priority
from cryptocast.tune.training_run import TrainOptions

log = logging.getLogger(__name__)

SCHEDULER_NAME = "training-scheduler"
SERVICE = command_queue.SCHEDULER_SERVICE
SCHEDULER_CPUS = 0.02  # it mostly waits; the trials it starts reserve their own fractions
# Its process runs niced like the trials: what it does between them (loading, gating) is training too.
POLL_S = 5.0
CLOCK_REFRESH_S = 60.0  # re-measure the exchange clock's offset and rate this often
STOP_S = 30.0
WAKING_KINDS = ("retrain", "recalibrate", "rollback")


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Everything the actor needs, picklable (no settings object crosses into Ray).

    ``database_url`` is the driver's: :func:`start_training` sends the path of its file instead
    (:mod:`cryptocast.sql.urlfile`), since Ray records an actor's arguments.
    """

    database_url: str | None
    rest_url: str
    model_store: str
    storage: str  # Ray Tune's experiment folder
    options: TrainOptions = field(default_factory=TrainOptions)
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    ray_address: str | None = None
    database_url_file: str | None = None
    concurrency: int = 1  # trainings carried out at once

    def work(self, pool_size: int) -> Work:
        """What a command needs to run, opened in the calling process."""
        url = self.database_url or read_url(self.database_url_file)
        db = Database(url, pool_size=pool_size)
        return Work(db, ModelStore(self.model_store), self.options, Path(self.storage), self.ray_address)

    @classmethod
    def from_settings(
        cls, settings: Settings, database_url: str, storage: Path | None = None
    ) -> TrainingConfig:
        options = TrainOptions(
            trials=settings.train_trials, epochs=settings.train_epochs, days=settings.train_days
        )
        schedule = ScheduleOptions(
            settings.train_daily_minute, settings.train_stagger_minutes, settings.train_days
        )
        folder = storage or settings.data_dir / "tune"
        return cls(
            database_url,
            settings.rest_url,
            settings.model_store,
            str(folder.resolve()),
            options,
            schedule,
            settings.ray_address,
            concurrency=settings.train_concurrency,
        )


@ray.remote(num_cpus=SCHEDULER_CPUS, max_restarts=-1, max_task_retries=-1)
class TrainingScheduler:
    def __init__(self, config: TrainingConfig) -> None:
        from cryptocast.exchange.binance import BinanceExchange

        setup_worker_logging()
        lower_priority()  # loading candles, gating, rollbacks: all of it waits for the live paths
        self.config = config
        self.database_url = config.database_url or read_url(config.database_url_file)
        self.work = config.work(pool_size=3)  # rollbacks run here; trainings in tasks of their own
        self.db = self.work.db
        self.exchange = BinanceExchange(rest_url=config.rest_url, stream_url="ws://unused/")
        self.clock = ExchangeClock(server_time(self.exchange))
        self.clock_at = 0.0
        self.scheduler = Scheduler(self.db, self._now_ms, config.options.needs, config.schedule)
        self.running: dict[int, dict] = {}  # the commands being carried out, by id
        self.tasks: dict[int, ray.ObjectRef] = {}  # ... and the task carrying out each
        self.workers: set[asyncio.Task] = set()
        self._claiming = asyncio.Lock()  # settling what others left and claiming: one worker at a time
        self.last_error: str | None = None
        self.turns = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = asyncio.get_event_loop().create_task(self._run())

    # --- the loop ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        listener = asyncio.get_running_loop().create_task(
            listen(self.database_url, {COMMANDS_CHANNEL: self._on_command}, self._connected)
        )
        started = False
        try:
            while not self._stopping:
                try:
                    if not started:
                        await command_queue.beat(self.db, SERVICE, self._details(), started=True)
                        started = True
                    await self.turn()
                    self.last_error = None
                except Exception as exc:  # database or exchange away: try again next turn
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("training scheduler turn failed: %s", self.last_error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                self._wake.clear()
        finally:
            listener.cancel()

    async def turn(self) -> None:
        """One round: clock, triggers, rollbacks, the next training, heartbeat."""
        self.turns += 1
        if await self._measure_clock():
            await self.scheduler.plan()
        for command in await command_queue.claim_pending(self.db, "rollback"):
            await execute(self.work, command)
        self.workers = {w for w in self.workers if not w.done()}
        while len(self.workers) < self.config.concurrency and not self._stopping:
            self.workers.add(asyncio.get_running_loop().create_task(self._drain_or_report()))
        await command_queue.beat(self.db, SERVICE, self._details())

    async def _drain_or_report(self) -> None:
        try:
            await self._drain()
        except Exception as exc:  # the database went away mid-queue: the next turn starts again
            self.last_error = f"queue: {type(exc).__name__}: {exc}"
            log.warning("training queue stopped: %s", self.last_error)

    async def _drain(self) -> None:
        """Run queued trainings one after another until none is left (``concurrency`` of these run).

        When nothing of this scheduler's runs, a training still marked running was left by a dead
        incarnation (or by a run whose end could not be written): it is settled before the claim.
        """
        while not self._stopping:
            async with self._claiming:
                if not self.running:
                    for row in await command_queue.recover_interrupted(
                        self.db, "the training scheduler stopped"
                    ):
                        log.warning("command %d (%s): %s", row["id"], row["symbol"], row["error"])
                if (command := await command_queue.claim_next_training(self.db)) is None:
                    return
                self.running[command["id"]] = command
            log.info(
                "command %d: %s %s (%s)",
                command["id"],
                command["kind"],
                command["symbol"],
                command["payload"].get("reason"),
            )
            try:
                status = await self._carry_out(command)
                log.info("command %d %s", command["id"], status)
            finally:
                self.running.pop(command["id"], None)
            if status == "failed":
                await recalibrate_instead(self.db, command)

    async def _carry_out(self, command: dict) -> str:
        """The command in a task of its own; its status once the task ended."""
        task = carry_out.remote(self.config, command)
        self.tasks[command["id"]] = task
        try:
            return await task
        except RayError as exc:
            if self._stopping:  # stop() queues it again
                return "stopped"
            why = f"its training process ended ({type(exc).__name__})"
            rows = await command_queue.recover_interrupted(self.db, why, only=[command["id"]])
            for row in rows:
                log.warning("command %d (%s): %s", row["id"], row["symbol"], row["error"])
            return rows[0]["status"] if rows else "failed"
        finally:
            self.tasks.pop(command["id"], None)

    async def _measure_clock(self) -> bool:
        """Keep the exchange clock measured; False while the exchange cannot be asked."""
        if not self.clock.measured or time.monotonic() - self.clock_at > CLOCK_REFRESH_S:
            try:
                await self.clock.measure()  # changes nothing unless both samples answer
                self.clock_at = time.monotonic()
            except Exception as exc:  # the exchange away: queued work still runs, triggers wait
                log.warning("exchange clock not measured: %s", exc)
                return self.clock.measured
        return True

    def _now_ms(self) -> int:
        return self.clock.now_ms()

    def _on_command(self, note: dict) -> None:
        if note.get("kind") in WAKING_KINDS:
            self._wake.set()

    async def _connected(self) -> None:
        self._wake.set()  # whatever was announced while nobody listened is in the table

    def _details(self) -> dict:
        return {
            "running": [
                {"id": c["id"], "kind": c["kind"], "symbol": c["symbol"]} for c in self.running.values()
            ],
            "concurrency": self.config.concurrency,
            "clock_rate": round(self.clock.rate, 3) if self.clock.measured else None,
            "last_error": self.last_error,
            "daily_minute": self.config.schedule.daily_minute,
            "stagger_minutes": self.config.schedule.stagger_minutes,
        }

    # --- called by others -------------------------------------------------------------------------
    async def status(self) -> dict:
        return self._details() | {"turns": self.turns, "niceness": os.getpriority(os.PRIO_PROCESS, 0)}

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """End the loop; trainings in progress go back to the queue for the next start."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), STOP_S)
        for task in list(self.tasks.values()):
            ray.cancel(task, force=True)
        for worker in self.workers:
            worker.cancel()
        for command_id in list(self.running):
            await command_queue.requeue(self.db, command_id, "the system stopped during the run")
        await self.exchange.close_connection()
        await self.db.dispose()


@ray.remote(num_cpus=SCHEDULER_CPUS, max_retries=0)
def carry_out(config: TrainingConfig, command: dict) -> str:
    """One claimed command, start to end, in a worker process of its own; returns its status."""
    setup_worker_logging()
    lower_priority()

    async def run() -> str:
        work = config.work(pool_size=2)
        try:
            return await execute(work, command)
        finally:
            await work.db.dispose()

    return asyncio.run(run())


def start_training(config: TrainingConfig) -> ray.actor.ActorHandle:
    """The training scheduler of this Ray cluster: started, or found running (it is detached and named)."""
    if config.database_url is not None:
        config = replace(config, database_url=None, database_url_file=write_url(config.database_url))
    return TrainingScheduler.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=SCHEDULER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(config)


def stop_training(timeout_s: float = STOP_S + 10) -> None:
    """Stop the cluster's training scheduler, if one runs (its queued work waits for the next start)."""
    try:
        actor = ray.get_actor(SCHEDULER_NAME, namespace=NAMESPACE)
    except ValueError:
        return
    with contextlib.suppress(Exception):
        ray.get(actor.stop.remote(), timeout=timeout_s)
    ray.kill(actor, no_restart=True)
