"""From candles to a calibrated LSTM predictor: data preparation, fitting and calibration.

The time split is train → validation (model selection, early stopping) → calibration (conformal
quantiles) → test (the latest walk-forward window, used by the promotion gate). The scaler sees
training rows only; the calibration span is never trained or selected on.

Model selection (early stopping, the sweep) scores the whole forecast against what is served without
a network: the mean of the point's skill over persistence (MAE) and the bands' skill over
RV30-scaled bands around persistence (interval score), so heads that forecast the spread and heads
that do not are ranked on one scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune import heads
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import LEVELS, SERVED, Calibration, Method, conformal_quantile, fit_calibration
from cryptocast.tune.dataset import (
    Split,
    SplitSpans,
    horizon_scale,
    origins,
    realised_variance,
    split,
    targets,
)
from cryptocast.tune.features import FeatureFrame, FeatureSpec, Scaler, compute
from cryptocast.tune.lstm import LstmConfig, Trainer
from cryptocast.tune.network_scale import NetworkScale, fit_network_calibration
from cryptocast.tune.predictor import LstmPredictor, PersistencePredictor, Predictor
from cryptocast.tune.scores import interval_score


@dataclass(slots=True)
class Prepared:
    """Everything one configuration trains on."""

    ff: FeatureFrame
    y: np.ndarray  # log-return targets per grid row
    split: Split
    scaler: Scaler
    x: np.ndarray  # scaled features
    targets: np.ndarray  # heads.training_targets: volatility-scaled returns and variance ratios


def prepare(candles: Candles, config: LstmConfig, spans: SplitSpans) -> Prepared:
    """Features, targets and spans; every origin has its returns and its realised variances (no
    missing minute up to t + 30), whichever head trains on them, so heads compare on the same origins."""
    ff = compute(candles, FeatureSpec(config.groups))
    y = targets(ff)
    rv = realised_variance(ff)
    parts = split(ff, origins(ff, config.seq_len, np.concatenate([y, rv], axis=1)), spans)
    if len(parts.train) == 0 or len(parts.val) == 0:
        raise ValueError("no complete training or validation windows")
    # Feature rows the training windows read: everything before the validation span starts.
    train_rows = ff.open_time < parts.bounds[1]
    scaler = Scaler.fit(ff.values[train_rows & ff.usable])
    unit = horizon_scale(ff.vol)
    trained = heads.training_targets(np.nan_to_num(y / unit, nan=0.0), np.nan_to_num(rv / unit**2, nan=0.0))
    return Prepared(ff, y, parts, scaler, scaler.transform(ff.values), trained)


def skill(p: Prepared, idx: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over horizons of 1 − MAE/MAE(persistence), with errors in price units."""
    close = p.ff.close[idx, None]
    err = np.abs(close * (np.exp(p.y[idx]) - np.exp(predicted))).mean(axis=0)
    base = np.abs(close * (np.exp(p.y[idx]) - 1.0)).mean(axis=0)
    return float(np.mean(1 - err / base))


def band_skill(p: Prepared, idx: np.ndarray, point: np.ndarray, scale: np.ndarray | None) -> float:
    """Mean over horizons and levels of 1 − IS/IS(RV30 bands around persistence), both bands split
    conformal with quantiles taken on ``idx`` itself (alike for both, so the comparison is fair)."""
    y, rv30 = p.y[idx], horizon_scale(p.ff.vol[idx])
    scale = rv30 if scale is None else scale
    gains = []
    for level in LEVELS:
        half = scale * conformal_quantile(np.abs(y - point) / scale, level)[None, :]
        base = rv30 * conformal_quantile(np.abs(y) / rv30, level)[None, :]
        mine = interval_score(y, point - half, point + half, level).mean(axis=0)
        gains.append(1 - mine / interval_score(y, -base, base, level).mean(axis=0))
    return float(np.mean(gains))


def validation_skill(p: Prepared, idx: np.ndarray, point: np.ndarray, scale: np.ndarray | None) -> float:
    """The selection score: the mean of the point's skill vs persistence and the bands' vs RV30."""
    return (skill(p, idx, point) + band_skill(p, idx, point, scale)) / 2


def fit(
    p: Prepared,
    config: LstmConfig,
    on_epoch: Callable[[int, float, float, list[np.ndarray]], None] | None = None,
) -> tuple[list[np.ndarray], float]:
    """Train for ``config.epochs``; keep the weights of the epoch with the best :func:`validation_skill`.

    ``on_epoch(epoch, loss, val_skill, weights)`` is called after every epoch (a sweep reports and
    checkpoints there, and may stop the trial).
    """
    trainer = Trainer(config, p.x, p.targets, p.split.train)
    best: tuple[float, list[np.ndarray]] = (-np.inf, trainer.model.get_weights())
    for epoch in range(config.epochs):
        loss = trainer.epoch()
        val = validation_skill(p, p.split.val, *trainer.predict_returns(p.split.val, p.ff.vol))
        weights = trainer.model.get_weights()
        if val > best[0]:
            best = (val, weights)
        if on_epoch is not None:
            on_epoch(epoch + 1, loss, val, weights)
    return best[1], best[0]


def lstm_predictor(
    p: Prepared, config: LstmConfig, weights: list[np.ndarray]
) -> tuple[LstmPredictor, Calibration]:
    """The calibrated predictor and, for the record, its plain-conformal counterpart. The intervals
    are scaled by the head's own forecast of the spread, or by RV30 for a point head."""
    draft = LstmPredictor(config, weights, p.scaler, Calibration(True, {}))
    idx = p.split.calib
    residuals = p.y[idx] - draft.point_returns(p.ff, idx)
    scaled: Calibration
    if heads.distributional(config.head):
        scaled = fit_network_calibration(NetworkScale(draft.scale_returns), p.ff, idx, residuals)
    else:
        scaled = Calibration.fit(residuals, horizon_scale(p.ff.vol[idx]))
    return LstmPredictor(config, weights, p.scaler, scaled), Calibration.fit(residuals, None)


def recent_calibration(
    predictor: Predictor,
    candles: Candles,
    calib_ms: int,
    method: Method | None = None,
    previous: Calibration | None = None,
) -> tuple[Calibration, Calibration]:
    """(``method``'s, plain) calibrations from the most recent ``calib_ms`` of complete origins.

    Without ``method`` the predictor's own calibration is refitted: the LSTM's is RV30 split conformal
    or its network's scale, pooled: its calibration span is carved from its training history, too
    short for the served method's scale model and hour cells."""
    ff = predictor.features(candles)
    y = targets(ff)
    idx = origins(ff, predictor.seq_len, y)
    end = int(ff.open_time[-1]) + MINUTE_MS
    idx = idx[ff.open_time[idx] >= end - calib_ms]
    residuals = y[idx] - predictor.point_returns(ff, idx)
    fitted = (
        predictor.calibration.refit(ff, idx, residuals, predictor.horizons)
        if method is None
        else fit_calibration(method, ff, idx, residuals, predictor.horizons)
    )

    def point(rows: np.ndarray) -> np.ndarray:
        return predictor.point_returns(ff, rows)

    return fitted.carried_from(previous, ff, predictor.horizons, point), Calibration.fit(residuals, None)


def persistence_predictor(
    candles: Candles, calib_ms: int = 0, method: Method = SERVED, previous: Calibration | None = None
) -> tuple[PersistencePredictor, Calibration]:
    """Persistence with ``method``'s intervals, calibrated on the most recent ``calib_ms`` of complete
    origins or the method's own span if longer (a training's calibration span is cut for the LSTM;
    the baseline's scale model and hour cells need the days their method was measured with).
    ``previous`` is the baseline calibration served until now: the online level correction goes on
    from its state (:meth:`Calibration.carried_from`)."""
    span = max(calib_ms, method.span_ms)
    template = PersistencePredictor(Calibration(True, {}))
    scaled, plain = recent_calibration(template, candles, span, method, previous)
    return PersistencePredictor(scaled), plain
