"""Conditional calibration: hour cells fix coverage where one pooled quantile cannot; round trips."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from cryptocast.tune.conformal import SERVED, Calibration, Cells, Method, conformal_quantile, fit_calibration
from cryptocast.tune.dataset import DAY_MS, HORIZONS, targets
from cryptocast.tune.features import compute
from cryptocast.tune.tracking import REPLAY_MINUTES
from cryptocast.tune.training import persistence_predictor
from cryptocast.tune.volatility import RV30
from cryptocast.tune.walkforward import DailyRecalibrated
from tests.tune.tune_data import btc

LOUD_HOUR = 13  # the scale misses this hour's extra volatility, as RV30 misses the US open


def _scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hour = rng.integers(0, 24, n)
    scale = np.exp(rng.normal(0, 0.3, (n, 1)))
    residuals = rng.normal(size=(n, 1)) * scale * np.where(hour == LOUD_HOUR, 2.0, 1.0)[:, None]
    return residuals, scale, hour


def test_hour_cells_restore_coverage_in_the_hour_a_pooled_quantile_under_covers() -> None:
    rng = np.random.default_rng(0)
    residuals, scale, hour = _scores(rng, 48_000)
    method = Method(RV30, hour_blocks=24, shrink=30)  # 2,000 origins an hour: the cells speak for themselves
    scores = np.abs(residuals) / scale
    pooled = {level: conformal_quantile(scores, level) for level in (0.8, 0.95)}
    conditional = Calibration(
        True, pooled, cells=Cells.fit(scores, scale, hour, method, pooled), method=method
    )
    plain_pooled = Calibration.fit(residuals, scale)
    test_residuals, test_scale, test_hour = _scores(rng, 48_000)
    loud = test_hour == LOUD_HOUR
    for level in (0.8, 0.95):
        cover_pooled = (np.abs(test_residuals) <= plain_pooled.half_widths(test_scale, test_hour)[level])[
            loud
        ].mean()
        cover_cells = (np.abs(test_residuals) <= conditional.half_widths(test_scale, test_hour)[level])[
            loud
        ].mean()
        assert cover_pooled < level - 0.15  # one quantile for all hours fails the loud one
        assert abs(cover_cells - level) < 0.03, (level, cover_cells)
        quiet = (np.abs(test_residuals) <= conditional.half_widths(test_scale, test_hour)[level])[
            ~loud
        ].mean()
        assert abs(quiet - level) < 0.02


def test_a_fitted_calibration_round_trips_through_json_and_old_records_still_load() -> None:
    candles = btc(3)
    ff = compute(candles)
    y = targets(ff)
    idx = np.flatnonzero(ff.usable & np.isfinite(y).all(axis=1))
    fitted = fit_calibration(SERVED, ff, idx[:-100], y[idx[:-100]], HORIZONS)
    assert fitted.tracking is not None
    restored = Calibration.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert restored.to_dict() == fitted.to_dict()
    for level, half in fitted.intervals(ff, idx[-100:]).items():
        np.testing.assert_array_equal(restored.intervals(ff, idx[-100:])[level], half)
    old = {"scaled": True, "quantiles": {"0.8": [1.0, 1.1, 1.2, 1.3], "0.95": [2.0, 2.1, 2.2, 2.3]}}
    legacy = Calibration.from_dict(old)
    assert legacy.method.scale == RV30 and legacy.cells is None and legacy.lookback == 0


def test_serving_computes_the_intervals_the_offline_evaluation_scores() -> None:
    candles = btc(16)
    baseline, _ = persistence_predictor(candles.until(int(candles.open_time[0]) + 15 * DAY_MS))
    ff = compute(candles)
    last = np.array([len(ff.open_time) - 1])
    offline = baseline.forecast_returns(candles, last)
    served = baseline.predict(candles)  # the last window_minutes candles only, as a replica gets them
    assert baseline.window_minutes == baseline.calibration.lookback + 1 > 61 + REPLAY_MINUTES
    close = float(ff.close[-1])
    for j, h in enumerate(served.horizons):
        assert np.isclose(h.lower_80, close * np.exp(-offline.half[0.8][0, j]), rtol=1e-12)
        assert np.isclose(h.upper_95, close * np.exp(offline.half[0.95][0, j]), rtol=1e-12)
    # the day since the fit moved the online correction: the served window replayed it
    fixed = replace(baseline.calibration, tracking=None).intervals(ff, last)
    assert not np.allclose(fixed[0.8], offline.half[0.8], rtol=1e-3)


def test_the_live_daily_refit_carries_the_correction_exactly_as_the_walk_forward_does() -> None:
    candles = btc(17)
    day0 = int(candles.open_time[0]) // DAY_MS * DAY_MS
    day15, day16 = day0 + 15 * DAY_MS, day0 + 16 * DAY_MS
    # live: the first baseline at the end of day 15, then the daily recalibration a day later
    first, _ = persistence_predictor(candles.until(day15))
    live, _ = persistence_predictor(candles.until(day16), previous=first.calibration)
    assert first.calibration.tracking is not None
    # offline: the walk-forward starts its correction at the first day with 14 days behind it
    walk = DailyRecalibrated(first)
    ff = compute(candles)
    idx = walk.usable_origins(candles)
    today = idx[(ff.open_time[idx] >= day16) & (ff.open_time[idx] < day16 + DAY_MS)]
    fitted = walk.calibrations(candles, today)
    assert fitted[day16].to_dict() == walk.calibrations(candles, idx)[day16].to_dict()  # whatever was asked
    offline = fitted[day16]
    for level, start in live.calibration.tracking.start.items():
        np.testing.assert_allclose(offline.tracking.start[level], start, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(offline.quantiles[level], live.calibration.quantiles[level], rtol=1e-9)
        assert np.all(start != 0)  # the day served under the first calibration moved it
    assert offline.tracking.since_ms == live.calibration.tracking.since_ms
    np.testing.assert_allclose(
        walk.forecast_returns(candles, today[-1:]).half[0.8],
        live.forecast_returns(candles, today[-1:]).half[0.8],
        rtol=1e-9,
    )
