"""What ``cryptocast evaluate`` scores: the pair's served models, the LSTM alone, and the baselines."""

from __future__ import annotations

from datetime import timedelta

from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.candlefile import CandleFile
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import SERVED, Calibration
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.pipeline import recent_candles
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
