"""From candles to a calibrated LSTM predictor: data preparation, fitting and calibration.

The time split is train → validation (model selection, early stopping) → calibration (conformal
quantiles) → test (the latest walk-forward window, used by the promotion gate). The scaler sees
training rows only; the calibration span is never trained or selected on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import LEGACY_SCALED, SERVED, Calibration, Method, fit_calibration
from cryptocast.tune.dataset import Split, SplitSpans, horizon_scale, origins, split, targets
from cryptocast.tune.features import FeatureFrame, FeatureSpec, Scaler, compute
from cryptocast.tune.lstm import LstmConfig, Trainer
from cryptocast.tune.predictor import LstmPredictor, PersistencePredictor, Predictor


@dataclass(slots=True)
class Prepared:
    """Everything one configuration trains on."""

    ff: FeatureFrame
    y: np.ndarray  # log-return targets per grid row
    split: Split
    scaler: Scaler
    x: np.ndarray  # scaled features
    z: np.ndarray  # volatility-scaled targets


def prepare(candles: Candles, config: LstmConfig, spans: SplitSpans) -> Prepared:
    ff = compute(candles, FeatureSpec(config.groups))
    y = targets(ff)
    parts = split(ff, origins(ff, config.seq_len, y), spans)
    if len(parts.train) == 0 or len(parts.val) == 0:
        raise ValueError("no complete training or validation windows")
    # Feature rows the training windows read: everything before the validation span starts.
    train_rows = ff.open_time < parts.bounds[1]
    scaler = Scaler.fit(ff.values[train_rows & ff.usable])
    z = np.nan_to_num(y / horizon_scale(ff.vol), nan=0.0)
    return Prepared(ff, y, parts, scaler, scaler.transform(ff.values), z)


def skill(p: Prepared, idx: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over horizons of 1 − MAE/MAE(persistence), with errors in price units."""
    close = p.ff.close[idx, None]
    err = np.abs(close * (np.exp(p.y[idx]) - np.exp(predicted))).mean(axis=0)
    base = np.abs(close * (np.exp(p.y[idx]) - 1.0)).mean(axis=0)
    return float(np.mean(1 - err / base))


def fit(
    p: Prepared, config: LstmConfig, on_epoch: Callable[[int, float, float, list[np.ndarray]], None] | None = None
) -> tuple[list[np.ndarray], float]:
    """Train for ``config.epochs``; keep the weights of the epoch with the best validation skill.

    ``on_epoch(epoch, loss, val_skill, weights)`` is called after every epoch (a sweep reports and
    checkpoints there, and may stop the trial).
    """
    trainer = Trainer(config, p.x, p.z, p.split.train)
    best: tuple[float, list[np.ndarray]] = (-np.inf, trainer.model.get_weights())
    for epoch in range(config.epochs):
        loss = trainer.epoch()
        val = skill(p, p.split.val, trainer.predict_returns(p.split.val, p.ff.vol))
        weights = trainer.model.get_weights()
        if val > best[0]:
            best = (val, weights)
        if on_epoch is not None:
            on_epoch(epoch + 1, loss, val, weights)
    return best[1], best[0]


def calibrate(p: Prepared, point: np.ndarray, idx: np.ndarray) -> tuple[Calibration, Calibration]:
    """(volatility-scaled, plain) conformal calibrations from residuals at ``idx``."""
    residuals = p.y[idx] - point
    return Calibration.fit(residuals, horizon_scale(p.ff.vol[idx])), Calibration.fit(residuals, None)


def lstm_predictor(
    p: Prepared, config: LstmConfig, weights: list[np.ndarray]
) -> tuple[LstmPredictor, Calibration]:
    """The calibrated predictor and, for the record, its plain-conformal counterpart."""
    draft = LstmPredictor(config, weights, p.scaler, Calibration(True, {}))
    scaled, plain = calibrate(p, draft.point_returns(p.ff, p.split.calib), p.split.calib)
    return LstmPredictor(config, weights, p.scaler, scaled), plain


def recent_calibration(
    predictor: Predictor, candles: Candles, calib_ms: int, method: Method = LEGACY_SCALED
) -> tuple[Calibration, Calibration]:
    """(``method``'s, plain) calibrations from the most recent ``calib_ms`` of complete origins.

    The LSTM keeps RV30 split conformal by default: its calibration span is carved from its training
    history, too short for the served method's scale model and hour cells."""
    ff = predictor.features(candles)
    y = targets(ff)
    idx = origins(ff, predictor.seq_len, y)
    end = int(ff.open_time[-1]) + MINUTE_MS
    idx = idx[ff.open_time[idx] >= end - calib_ms]
    residuals = y[idx] - predictor.point_returns(ff, idx)
    return fit_calibration(method, ff, idx, residuals, predictor.horizons), Calibration.fit(residuals, None)


def persistence_predictor(
    candles: Candles, calib_ms: int = 0, method: Method = SERVED
) -> tuple[PersistencePredictor, Calibration]:
    """Persistence with ``method``'s intervals, calibrated on the most recent ``calib_ms`` of complete
    origins or the method's own span if longer (a training's calibration span is cut for the LSTM;
    the baseline's scale model and hour cells need the days their method was measured with)."""
    span = max(calib_ms, method.span_ms)
    template = PersistencePredictor(Calibration(True, {}))
    scaled, plain = recent_calibration(template, candles, span, method)
    return PersistencePredictor(scaled), plain
