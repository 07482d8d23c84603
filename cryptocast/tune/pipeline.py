"""Train one pair end to end: load its history, sweep, then gate and register the winner.

Used by the training scheduler, ``cryptocast train --local`` and the benchmark. A training's spans
are fitted to the history the pair has (:mod:`cryptocast.tune.history`), its progress is reported as
it goes, and the promotion step (:mod:`cryptocast.tune.promotion`) registers everything in one
transaction: a training stopped at any point leaves the registry, and so the served champion, as
it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.candles import history_ms, recent_candles
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.promotion import gate_and_register
from cryptocast.tune.sweep import SweepProgress, run_sweep
from cryptocast.tune.training_run import TrainOptions, TrainOutcome

Progress = Callable[[dict], None]  # told {"phase": …} and, during the sweep, trial counts, best score, ETA


async def train_pair(
    db: Database,
    store: registry.ModelStore,
    sid: int,
    options: TrainOptions,
    storage: Path,
    on_progress: Progress | None = None,
    ray_address: str | None = None,
) -> TrainOutcome:
    """Sweep, calibrate and gate an LSTM for one pair; refresh its persistence baseline too.

    Raises :class:`~cryptocast.tune.history.NotEnoughHistory` (saying how much more is needed) when
    the pair's history is below the minimum, before any work is done.
    """
    tell = on_progress or (lambda _progress: None)
    tell({"phase": "loading"})
    candles = await recent_candles(db, sid, options.days * DAY_MS)
    spans = options.needs.fit_spans(history_ms(candles))
    started = time.perf_counter()

    def sweep_progress(p: SweepProgress) -> None:
        tell(
            {
                "phase": "sweep",
                "trial": p.done,
                "trials": p.total,
                "best_val_skill": p.best_val_skill,
                "elapsed_s": round(p.elapsed_s, 1),
                "eta_s": None if p.eta_s is None else round(p.eta_s, 1),
            }
        )

    sweep = await asyncio.to_thread(
        run_sweep,
        candles,
        spans,
        options.trials,
        options.epochs,
        options.seed,
        storage,
        sweep_progress,
        ray_address,
    )
    tell(
        {
            "phase": "gating",
            "trial": options.trials,
            "trials": options.trials,
            "best_val_skill": sweep.val_skill,
            "elapsed_s": round(time.perf_counter() - started, 1),
            "eta_s": None,
        }
    )
    return await gate_and_register(
        db, store, sid, candles, options, sweep, time.perf_counter() - started, spans
    )
