"""The Ray Tune sweep: random search with ASHA early stopping, selected on validation skill.

The space: the head (a point only, or a point and a forecast of the spread by QLIKE or by pinball,
:mod:`cryptocast.tune.heads`), the window length, the feature set, the network's size and the
optimiser. The validation skill weighs the point against persistence and the bands against RV30
(:func:`cryptocast.tune.training.validation_skill`), so the heads compete on one scale. A feature set
that needs order flow the pair's candles do not record (a replay derives it) is left out of the
space, and the reason is logged: no trial trains on a made-up number.

A sweep runs beside live ingestion and serving on two cores, so it is held to a resource plan
(docs/training.md): each trial reserves ``TRIAL_CPU`` of Ray's logical CPUs and runs a one-thread
TensorFlow, one trial runs at a time (``MAX_CONCURRENT_TRIALS``: the sweep keeps one core, the live
paths the other), and every thread of a trial runs as background work (:func:`lower_priority`), so
the kernel gives ingestion and serving the CPU first whenever they want it. Trials checkpoint their weights every epoch; the winner is the
checkpoint with the best validation skill vs persistence (not the lowest loss). Ray is started (or
joined) by :func:`cryptocast.actors.ray_runtime.start_ray`, which keeps a local head on loopback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from cryptocast.actors.ray_runtime import WORKER_NICENESS_ENV, start_ray
from cryptocast.logs import setup_worker_logging
from cryptocast.tune.candles import Candles
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.features import DEFAULT_GROUPS, ORDER_FLOW, FeatureSpec, refusal
from cryptocast.tune.heads import HEADS
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.training import fit, prepare

TRIAL_CPU = 0.5
MAX_CONCURRENT_TRIALS = 1  # one trial at a time: one core for the sweep, the other for the live paths
TRIAL_NICE = 10  # steps nicer than the live paths: CFS weight 110 against 1024 at nice 0, they go first
RAY_DEFAULT_WORKER_NICENESS = 15  # what the raylet starts workers at unless RAY_worker_niceness says
MAX_NICENESS = 19
RAY_CPUS = 2  # a local head's CPUs; a cluster joined by address keeps its own
METRIC = "val_skill"
GRACE_EPOCHS = 1
WEIGHTS_FILE = "weights.npz"
TUNE_LOGGERS = ("ray.tune", "ray.train", "ray.air")
FEATURE_SETS = {
    "default": DEFAULT_GROUPS,
    "no_calendar": ("returns", "volume", "shape"),
    "returns_calendar": ("returns", "calendar"),
    "order_flow": DEFAULT_GROUPS + ORDER_FLOW,  # live klines only: refused where the fields are derived
}
SEARCH_SPACE = {
    "head": tune.choice(list(HEADS)),
    "seq_len": tune.choice([15, 30, 60]),
    "layers": tune.choice([1, 2]),
    "units": tune.choice([16, 32, 64]),
    "dropout": tune.uniform(0.0, 0.3),
    "lr": tune.loguniform(3e-4, 3e-3),
    "batch": tune.choice([256, 512]),
}

log = logging.getLogger(__name__)


def feature_sets(candles: Candles) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """The feature sets these candles can feed, and for each one left out, why."""
    usable, refused = {}, {}
    for name, groups in FEATURE_SETS.items():
        reason = refusal(candles, FeatureSpec(groups))
        if reason is None:
            usable[name] = groups
        else:
            refused[name] = reason
    return usable, refused


def search_space(candles: Candles) -> dict:
    """:data:`SEARCH_SPACE` with the feature sets the candles can feed."""
    usable, refused = feature_sets(candles)
    for name, reason in refused.items():
        log.info("feature set %s left out of the sweep: %s", name, reason)
    return SEARCH_SPACE | {"groups": tune.choice([list(groups) for groups in usable.values()])}


@dataclass(frozen=True, slots=True)
class SweepResult:
    config: LstmConfig
    weights: list[np.ndarray]
    val_skill: float
    trials: list[dict]  # config and best validation skill of every trial


def lower_priority(nicer_by: int = TRIAL_NICE) -> None:
    """Run every thread of this process as background work: under the kernel's idle policy, and
    ``nicer_by`` steps nicer than the live paths around it.

    ``SCHED_IDLE`` threads run only on CPU time no normal thread wants, and a waking normal thread
    takes the core from them at once; the niceness is the fallback where the policy cannot be set.
    The live paths are Ray workers too, at the niceness the raylet starts workers with
    (``RAY_worker_niceness``: 0 under :func:`start_ray`, Ray's own default 15 elsewhere), so the
    target is that plus ``nicer_by`` (at most 19), and a thread already nicer keeps its niceness.
    On Linux both are per thread and a new thread inherits its creator's: every thread that exists
    now is set, and the threads TensorFlow starts later inherit them.
    """
    serving = int(os.environ.get(WORKER_NICENESS_ENV, RAY_DEFAULT_WORKER_NICENESS))
    target = min(MAX_NICENESS, serving + nicer_by)
    tasks = Path(f"/proc/{os.getpid()}/task")
    for tid in [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), target))
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def quiet_tune() -> None:
    """Tune and Train log every checkpoint and result file at INFO; the sweep's progress is reported
    through its callback instead (a running system trains every day, its console stays readable)."""
    for name in TUNE_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _trial(config: dict, candles: Candles, spans: SplitSpans, epochs: int, seed: int) -> None:
    setup_worker_logging()
    lower_priority()
    quiet_tune()
    cfg = LstmConfig.from_dict(config | {"epochs": epochs, "seed": seed})

    def report(epoch: int, loss: float, val: float, weights: list[np.ndarray]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder) / WEIGHTS_FILE, *weights)
            tune.report(
                {METRIC: val, "loss": loss, "epoch": epoch},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    fit(prepare(candles, cfg, spans), cfg, report)


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """Trials finished of all, the best validation skill any trial reached so far, time taken."""

    done: int
    total: int
    best_val_skill: float | None
    elapsed_s: float

    @property
    def eta_s(self) -> float | None:
        """Time left at the pace so far (None before the first trial finishes)."""
        return self.elapsed_s / self.done * (self.total - self.done) if self.done else None


class _Progress(tune.Callback):
    """Tells ``report`` after every epoch of every trial and after every finished trial."""

    def __init__(self, report: Callable[[SweepProgress], None], total: int) -> None:
        self.report, self.total, self.done = report, total, 0
        self.best: float | None = None
        self.started = time.monotonic()

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment's state; the listener stays in this process."""
        return self.__dict__ | {"report": None}

    def _tell(self) -> None:
        if self.report is not None:
            self.report(SweepProgress(self.done, self.total, self.best, time.monotonic() - self.started))

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: object
    ) -> None:
        value = result.get(METRIC)
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
        self._tell()

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: object) -> None:
        self.done += 1
        self._tell()


def run_sweep(
    candles: Candles,
    spans: SplitSpans,
    trials: int,
    epochs: int,
    seed: int,
    storage: Path,
    on_progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Search ``trials`` configurations; return the best checkpoint by validation skill."""
    start_ray(num_cpus=RAY_CPUS, address=ray_address)  # the one way Ray starts: loopback only
    trainable = tune.with_resources(
        tune.with_parameters(_trial, candles=candles, spans=spans, epochs=epochs, seed=seed),
        {"cpu": TRIAL_CPU},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=search_space(candles),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=trials,
            search_alg=BasicVariantGenerator(random_state=seed, max_concurrent=MAX_CONCURRENT_TRIALS),
            scheduler=ASHAScheduler(max_t=epochs, grace_period=min(GRACE_EPOCHS, epochs), time_attr="epoch"),
        ),
        run_config=tune.RunConfig(
            storage_path=str(storage.resolve()),
            verbose=0,
            callbacks=[_Progress(on_progress, trials)] if on_progress else None,
        ),
    )
    quiet_tune()
    with contextlib.redirect_stdout(io.StringIO()):  # Tune prints banners even at verbose=0
        grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    errors = [str(r.error) for r in results if r.error]
    if len(errors) == len(grid):
        raise RuntimeError(f"every trial failed; first error: {errors[0]}")
    best = grid.get_best_result(metric=METRIC, mode="max", scope="all")
    checkpoint = best.get_best_checkpoint(METRIC, "max")
    if checkpoint is None or best.config is None or best.metrics_dataframe is None:
        raise RuntimeError("the best trial left no checkpoint, config or metrics")
    with checkpoint.as_directory() as folder, np.load(Path(folder) / WEIGHTS_FILE) as npz:
        weights = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    summary = [
        {
            "config": r.config,
            METRIC: float(r.metrics_dataframe[METRIC].max())
            if r.metrics_dataframe is not None and METRIC in r.metrics_dataframe
            else None,
        }
        for r in results
    ]
    best_val = float(best.metrics_dataframe[METRIC].max())
    config = LstmConfig.from_dict(best.config | {"epochs": epochs, "seed": seed})
    return SweepResult(config, weights, best_val, summary)
