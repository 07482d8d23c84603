"""One training of a pair as its callers see it: the options it runs with and the outcome it reports.

The scheduler's jobs, ``cryptocast train --local`` and the benchmark build a :class:`TrainOptions`
and read a :class:`TrainOutcome`, whose :meth:`~TrainOutcome.summary` is what a training command
reports as its result; how the training gets there is :mod:`cryptocast.tune.pipeline`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cryptocast.tune import registry
from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.gate import HorizonDecision
from cryptocast.tune.history import HistoryNeeds

DEFAULT_DAYS = 30
DEFAULT_TRIALS = 8
DEFAULT_EPOCHS = 4
DEFAULT_SEED = 7


@dataclass(frozen=True, slots=True)
class TrainOptions:
    trials: int = DEFAULT_TRIALS
    epochs: int = DEFAULT_EPOCHS
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    needs: HistoryNeeds = field(default_factory=HistoryNeeds)  # spans preferred, and the least that will do
    period_ms: int = DAY_MS  # one observation of the gate's paired test
    keep: int = registry.KEEP_VERSIONS


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    baseline: registry.ModelRecord
    lstm: registry.ModelRecord
    decisions: list[HorizonDecision]
    rechecks: list[HorizonDecision]  # the previous champion's horizons, kept or demoted
    report: dict  # scores on the latest walk-forward window
    sweep_seconds: float
    trials: list[dict]
    spans: SplitSpans

    def summary(self) -> dict:
        """What a training command reports as its result: versions, the gate's verdict per horizon."""
        return {
            "lstm": {
                "version": self.lstm.version,
                "status": self.lstm.status,
                "served_horizons": self.lstm.served_horizons,
            },
            "baseline": {"version": self.baseline.version},
            "gate": [
                {
                    "horizon": d.horizon,
                    "promoted": d.promote,
                    "p_vs_champion": _finite(d.p_vs_champion),
                    "p_vs_persistence": _finite(d.p_vs_persistence),
                    "mde": _finite(d.mde),
                    "days": d.days,
                    "reason": d.reason,
                }
                for d in self.decisions
            ],
            "champion_recheck": [
                {"horizon": d.horizon, "kept": d.promote, "reason": d.reason} for d in self.rechecks
            ],
            "val_skill": self.lstm.metrics.get("val_skill"),
            "test_days": self.report["days"],
            "spans_days": {
                k: v / DAY_MS
                for k, v in (
                    ("val", self.spans.val_ms),
                    ("calib", self.spans.calib_ms),
                    ("test", self.spans.test_ms),
                )
            },
            "sweep_seconds": round(self.sweep_seconds, 1),
            "trials": len(self.trials),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value  # NaN (a recheck has no champion comparison) is not JSON
