"""Carrying out one claimed command — retrain, recalibrate or rollback — to ``done`` or ``failed``.

A retrain reports its progress while it runs (phase, trial i of n, best validation skill so far,
elapsed and ETA): the sweep tells it from Ray Tune's thread, so it is only remembered there and
written to the command row from the event loop, at most once per ``PROGRESS_S``. Whatever ends the
run, the row ends with it: ``done`` with a result (the new versions, the gate's verdict per
horizon) or ``failed`` with a reason a user can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from cryptocast.sql import command_queue, pairmetrics
from cryptocast.sql.database import Database
from cryptocast.sql.queries import symbol_id
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline, recalibrate_pair
from cryptocast.tune.history import NotEnoughHistory
from cryptocast.tune.pipeline import train_pair
from cryptocast.tune.training_run import TrainOptions

log = logging.getLogger(__name__)

PROGRESS_S = 1.0


class ProgressWriter:
    """The newest progress of a running command, written to its row by :meth:`flush_forever`."""

    def __init__(self, db: Database, command_id: int) -> None:
        self.db, self.command_id = db, command_id
        self.started = time.monotonic()
        self.latest: dict = {"phase": "starting"}
        self.written: dict | None = None

    def tell(self, progress: dict) -> None:
        """Safe from any thread: one assignment, read by the writer on the event loop."""
        self.latest = progress

    async def flush(self) -> None:
        current = self.latest | {"elapsed_s": round(time.monotonic() - self.started, 1)}
        if current != self.written:
            await command_queue.set_progress(self.db, self.command_id, current)
            self.written = current

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_S)
            try:
                await self.flush()
            except Exception as exc:  # progress is news, never a reason to stop training
                log.warning("progress of command %d not written: %s", self.command_id, exc)


def reason(exc: BaseException) -> str:
    """A failure as one readable line."""
    if isinstance(exc, (NotEnoughHistory, registry.NoChampion, LookupError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Work:
    """What a command needs to run: the database, the model store and how to train."""

    db: Database
    store: registry.ModelStore
    options: TrainOptions
    storage: Path  # Ray Tune's experiment folder
    ray_address: str | None = None

    async def run(self, command: dict, progress: ProgressWriter) -> dict:
        """Carry out ``command``; returns its result or raises with the reason."""
        symbol = command["symbol"] or ""
        sid = await symbol_id(self.db, symbol)
        if sid is None:
            raise LookupError(f"{symbol} is not tracked")
        kind = command["kind"]
        if kind == "retrain":
            await ensure_baseline(self.db, self.store, sid)
            outcome = await train_pair(
                self.db, self.store, sid, self.options, self.storage, progress.tell, self.ray_address
            )
            return outcome.summary()
        if kind == "recalibrate":
            progress.tell({"phase": "recalibrating"})
            return await recalibrate_pair(self.db, self.store, sid, self.options.needs.preferred.calib_ms)
        if kind == "rollback":
            restored = await registry.rollback(self.db, sid)
            if restored is None:
                return {"restored": None, "serving": "the persistence baseline alone"}
            return {"restored": {"version": restored.version, "served_horizons": restored.served_horizons}}
        raise ValueError(f"command kind {kind!r} is not a training command")


async def recalibrate_instead(db: Database, command: dict) -> int | None:
    """After a daily retrain failed, queue the day's recalibration, so the intervals are still refitted
    daily; returns its command id (None: not a failed daily retrain, or a training is open already)."""
    if command["kind"] != "retrain" or (command["payload"] or {}).get("trigger") != "daily":
        return None
    reason = f"the daily slot's retrain (command {command['id']}) failed: recalibrating instead"
    return await command_queue.submit_training(db, "recalibrate", command["symbol"], "daily", reason)


async def _count_run(db: Database, command: dict, counts: dict[str, float], levels: dict[str, float]) -> None:
    """A retrain's start or end, added to the pair's metrics; never a reason to fail the command."""
    if command["kind"] != "retrain":
        return
    try:
        sid = await symbol_id(db, command["symbol"] or "")
        if sid is not None:
            await pairmetrics.record(db, sid, counts, levels)
    except Exception as exc:
        log.warning("training metrics of command %d not written: %s", command["id"], exc)


async def execute(work: Work, command: dict) -> str:
    """Run a claimed command and end its row; returns the status it ended with."""
    await _count_run(work.db, command, {"training_runs_started": 1}, {})
    progress = ProgressWriter(work.db, command["id"])
    writer = asyncio.get_running_loop().create_task(progress.flush_forever())
    error, result = None, None
    try:
        result = await work.run(command, progress)
    except Exception as exc:  # one pair's failure must not stop the queue
        error = reason(exc)
        log.warning("command %d (%s %s) failed: %s", command["id"], command["kind"], command["symbol"], error)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    if result is not None:
        result = result | {"seconds": round(time.monotonic() - progress.started, 1)}
    await command_queue.finish(work.db, command["id"], result=result, error=error)
    await _count_run(
        work.db,
        command,
        {"training_runs_failed" if error else "training_runs_finished": 1},
        {"training_last_run_duration_seconds": time.monotonic() - progress.started},
    )
    return "failed" if error else "done"
