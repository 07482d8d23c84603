"""The persistence baseline outside a training: registered once a pair has data, recalibrated daily.

Every pair serves from its first hours: :func:`ensure_baseline` registers a calibrated persistence
champion as soon as the pair has ``MIN_BASELINE_MINUTES`` of history. A day with no retrain still
gets its daily recalibration (:func:`recalibrate_pair`): the served intervals are refitted on the
newest days, for the persistence champion and the LSTM champion alike, without training.
"""

from __future__ import annotations

from cryptocast.records import MINUTE_MS, ms_to_dt
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.candles import Candles, recent_candles
from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.predictor import LSTM, PERSISTENCE, LstmPredictor
from cryptocast.tune.training import persistence_predictor, recent_calibration

MIN_BASELINE_MINUTES = 240  # persistence is calibrated as soon as a pair has this much history
RECALIBRATION_WARMUP_MS = DAY_MS  # candles before the calibration span, for the features' lookback


def registered_span(candles: Candles) -> dict:
    """``data_start`` and ``data_end`` of a model registered on ``candles``."""
    return {
        "data_start": ms_to_dt(int(candles.open_time[0])),
        "data_end": ms_to_dt(int(candles.open_time[-1]) + MINUTE_MS),
    }


async def ensure_baseline(
    db: Database, store: registry.ModelStore, sid: int, calib_ms: int = 2 * DAY_MS
) -> registry.ModelRecord | None:
    """Register a calibrated persistence champion for a pair that has data but none yet."""
    existing = await registry.current(db, sid, PERSISTENCE)
    if existing is not None:
        return existing
    candles = await recent_candles(db, sid, max(calib_ms, SERVED.span_ms) + RECALIBRATION_WARMUP_MS)
    if len(candles) < MIN_BASELINE_MINUTES:
        return None
    baseline, plain = persistence_predictor(candles, calib_ms)
    return await registry.register(
        db,
        store,
        sid,
        baseline,
        registry.CHAMPION,
        "first baseline: the pair has data",
        **registered_span(candles),
        metrics={"plain_calibration": plain.to_dict()},
    )


async def recalibrate_pair(
    db: Database, store: registry.ModelStore, sid: int, calib_ms: int = SplitSpans().calib_ms
) -> dict:
    """Refit the served intervals on the newest ``calib_ms`` without training: a day with no retrain
    still gets its daily recalibration. The persistence champion and the LSTM champion (its weights
    and served horizons kept) each get a new version, registered together."""
    baseline = await registry.current(db, sid, PERSISTENCE)
    if baseline is None:
        raise registry.NoChampion(f"pair {sid} has no persistence champion yet: nothing to recalibrate")
    candles = await recent_candles(db, sid, max(calib_ms, SERVED.span_ms) + RECALIBRATION_WARMUP_MS)
    if len(candles) < MIN_BASELINE_MINUTES:
        raise ValueError(
            f"only {len(candles)} minutes of candles; recalibrating needs {MIN_BASELINE_MINUTES}"
        )
    span = registered_span(candles)
    new_baseline, plain = persistence_predictor(
        candles, calib_ms, previous=registry.load(baseline).calibration
    )
    champion = await registry.current(db, sid, LSTM)
    result: dict = {}
    async with db.begin() as conn:
        record = await registry.register_on(
            conn,
            store,
            sid,
            new_baseline,
            registry.CHAMPION,
            f"daily recalibration of v{baseline.version}",
            **span,
            metrics={"plain_calibration": plain.to_dict(), "recalibrated_from": baseline.version},
        )
        result["baseline"] = {"version": record.version, "from": baseline.version}
        if champion is not None and champion.artifact_uri:
            lstm = registry.load_as(LstmPredictor, champion)
            refit = LstmPredictor(
                lstm.config, lstm.weights, lstm.scaler, recent_calibration(lstm, candles, calib_ms)[0]
            )
            kept = {k: v for k, v in champion.metrics.items() if k != "artifact_sha256"}
            lstm_record = await registry.register_on(
                conn,
                store,
                sid,
                refit,
                registry.CHAMPION,
                f"daily recalibration of v{champion.version}",
                data_start=champion.data_start,
                data_end=span["data_end"],
                hyperparameters=champion.hyperparameters,
                metrics=kept | {"recalibrated_from": champion.version},
            )
            result["lstm"] = {
                "version": lstm_record.version,
                "from": champion.version,
                "served_horizons": lstm_record.served_horizons,
            }
    return result
