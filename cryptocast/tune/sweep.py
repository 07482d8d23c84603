"""The Ray Tune sweep: random search with ASHA early stopping, selected on validation skill.

Each trial gets a fraction of a CPU and a one-thread TensorFlow, so a sweep runs beside live
ingestion on two cores. Trials checkpoint their weights every epoch; the winner is the checkpoint
with the best validation skill vs persistence (not the lowest loss). Ray is started (or joined)
by :func:`cryptocast.actors.ray_runtime.start_ray`, which keeps a local head on loopback.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from cryptocast.actors.ray_runtime import start_ray
from cryptocast.tune.candles import Candles
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.features import DEFAULT_GROUPS
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.training import fit, prepare

TRIAL_CPU = 0.5
RAY_CPUS = 2  # a local head's CPUs; a cluster joined by address keeps its own
METRIC = "val_skill"
GRACE_EPOCHS = 1
WEIGHTS_FILE = "weights.npz"
SEARCH_SPACE = {
    "seq_len": tune.choice([15, 30, 60]),
    "layers": tune.choice([1, 2]),
    "units": tune.choice([16, 32, 64]),
    "dropout": tune.uniform(0.0, 0.3),
    "lr": tune.loguniform(3e-4, 3e-3),
    "batch": tune.choice([256, 512]),
    "groups": tune.choice([list(DEFAULT_GROUPS), ["returns", "volume", "shape"], ["returns", "calendar"]]),
}


@dataclass(frozen=True, slots=True)
class SweepResult:
    config: LstmConfig
    weights: list[np.ndarray]
    val_skill: float
    trials: list[dict]  # config and best validation skill of every trial


def _trial(config: dict, candles: Candles, spans: SplitSpans, epochs: int, seed: int) -> None:
    cfg = LstmConfig.from_dict(config | {"epochs": epochs, "seed": seed})

    def report(epoch: int, loss: float, val: float, weights: list[np.ndarray]) -> None:
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder) / WEIGHTS_FILE, *weights)
            tune.report(
                {METRIC: val, "loss": loss, "epoch": epoch},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    fit(prepare(candles, cfg, spans), cfg, report)


class _Progress(tune.Callback):
    def __init__(self, on_trial_done: Callable[[int, int], None], total: int) -> None:
        self.on_trial_done, self.total, self.done = on_trial_done, total, 0

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001, ANN003
        self.done += 1
        self.on_trial_done(self.done, self.total)


def run_sweep(
    candles: Candles,
    spans: SplitSpans,
    trials: int,
    epochs: int,
    seed: int,
    storage: Path,
    on_trial_done: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Search ``trials`` configurations; return the best checkpoint by validation skill."""
    start_ray(num_cpus=RAY_CPUS, address=ray_address)  # the one way Ray starts: loopback only
    trainable = tune.with_resources(
        tune.with_parameters(_trial, candles=candles, spans=spans, epochs=epochs, seed=seed), {"cpu": TRIAL_CPU}
    )
    tuner = tune.Tuner(
        trainable,
        param_space=SEARCH_SPACE,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=trials,
            search_alg=BasicVariantGenerator(random_state=seed),
            scheduler=ASHAScheduler(max_t=epochs, grace_period=min(GRACE_EPOCHS, epochs), time_attr="epoch"),
        ),
        run_config=tune.RunConfig(
            storage_path=str(storage.resolve()),
            verbose=0,
            callbacks=[_Progress(on_trial_done, trials)] if on_trial_done else None,
        ),
    )
    with contextlib.redirect_stdout(sys.stderr):  # Tune prints banners; stdout is for command output
        grid = tuner.fit()
    errors = [str(r.error) for r in grid if r.error]
    if len(errors) == len(grid):
        raise RuntimeError(f"every trial failed; first error: {errors[0]}")
    best = grid.get_best_result(metric=METRIC, mode="max", scope="all")
    checkpoint = best.get_best_checkpoint(METRIC, "max")
    with checkpoint.as_directory() as folder, np.load(Path(folder) / WEIGHTS_FILE) as npz:
        weights = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    summary = [
        {"config": r.config, METRIC: float(r.metrics_dataframe[METRIC].max()) if r.metrics_dataframe is not None and METRIC in r.metrics_dataframe else None}
        for r in grid
    ]
    best_val = float(best.metrics_dataframe[METRIC].max())
    config = LstmConfig.from_dict(best.config | {"epochs": epochs, "seed": seed})
    return SweepResult(config, weights, best_val, summary)
