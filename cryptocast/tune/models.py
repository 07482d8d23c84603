"""What ``cryptocast evaluate`` scores: the pair's served models, the LSTM alone, and the baselines.

A user may bring a file for a pair this system has never served: then there is nothing stored to
score, and the file itself is enough for what matters, because the walk-forward refits every
interval method each day on the days before it (:func:`file_set`). The calibration each method
starts from is fitted on the file's first calibration span; the walk-forward keeps only its method,
since every scored day's intervals are refitted on the days before that day.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.candlefile import CandleFile
from cryptocast.tune.candles import Candles, recent_candles
from cryptocast.tune.conformal import (
    LEGACY_PLAIN,
    LEGACY_SCALED,
    SERVED,
    Calibration,
    Method,
    fit_calibration,
)
from cryptocast.tune.dataset import DAY_MS, HORIZONS, targets
from cryptocast.tune.features import compute
from cryptocast.tune.predictor import LSTM, PERSISTENCE, PersistencePredictor, Predictor

DEFAULT_EVALUATION_MS = 7 * DAY_MS


async def evaluation_set(
    db: Database, sid: int, data: CandleFile | None
) -> tuple[Candles, dict[str, Predictor], str]:
    """Candles (a checked file, or the newest week stored) and the predictors to score on them."""
    served = await registry.load_served(db, sid)
    predictors: dict[str, Predictor] = {"served": served, "persistence": served.baseline}
    baseline = await registry.current(db, sid, PERSISTENCE)
    if baseline is not None and "plain_calibration" in baseline.metrics:
        plain = Calibration.from_dict(baseline.metrics["plain_calibration"])
        predictors["persistence_plain_conformal"] = PersistencePredictor(plain)
    lstm = await registry.current(db, sid, LSTM) or await registry.current(db, sid, LSTM, registry.SHADOW)
    if lstm is not None:
        predictors[f"lstm_v{lstm.version}_all_horizons"] = registry.load(lstm)
    if data is not None:
        return data.candles, predictors, data.name
    warmup_ms = int(timedelta(hours=2).total_seconds() * 1000)  # the features' lookback
    candles = await recent_candles(db, sid, SERVED.span_ms + DEFAULT_EVALUATION_MS + warmup_ms)
    return candles, predictors, "database (newest week, after the intervals' calibration span)"


# The methods a file alone can score: persistence with the served intervals (the reference every
# report scores against), with the RV30 method they replaced, and with plain conformal.
FILE_METHODS: dict[str, Method] = {
    "persistence": SERVED,
    "persistence_rv30_conformal": LEGACY_SCALED,
    "persistence_plain_conformal": LEGACY_PLAIN,
}


def file_set(data: CandleFile) -> dict[str, Predictor]:
    """Persistence with each of :data:`FILE_METHODS`, fitted on the file's first calibration span
    (to be wrapped in :class:`~cryptocast.tune.walkforward.DailyRecalibrated`, which refits it daily)."""
    ff = compute(data.candles)
    y = targets(ff)
    known = ff.usable & np.isfinite(y).all(axis=1)
    out: dict[str, Predictor] = {}
    for name, method in FILE_METHODS.items():
        first = int(ff.open_time[0]) + method.span_ms
        seed = np.flatnonzero(known & (ff.open_time < first))
        if len(seed) == 0:
            raise ValueError(
                f"{data.name}: no minute of its first {method.span_ms // DAY_MS} days has a target"
            )
        out[name] = PersistencePredictor(fit_calibration(method, ff, seed, y[seed], HORIZONS))
    return out
