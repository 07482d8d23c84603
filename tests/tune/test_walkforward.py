"""Daily recalibration as served: no day's intervals use that day or later, and they cover as stated."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from cryptocast.tune.candles import Candles, from_frame
from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS, targets
from cryptocast.tune.features import compute
from cryptocast.tune.training import persistence_predictor
from cryptocast.tune.walkforward import DailyRecalibrated
from tests.tune.tune_data import btc


def _recalibrated(candles, calib_ms: int | None = 2 * DAY_MS):
    baseline, _ = persistence_predictor(candles.until(int(candles.open_time[0]) + 2 * DAY_MS))
    return DailyRecalibrated(baseline, calib_ms)


def _shocked_after(candles: Candles, cut_ms: int, seed: int) -> Candles:
    """The candles with every price from ``cut_ms`` on moved by a random factor."""
    frame = candles.frame.copy()
    later = frame["open_time_ms"] >= cut_ms
    shock = np.random.default_rng(seed).lognormal(0, 0.01, later.sum())
    for column in ("open", "high", "low", "close"):
        frame.loc[later, column] = frame.loc[later, column] * shock
    frame.loc[later, "high"] = frame.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    frame.loc[later, "low"] = frame.loc[later, ["open", "high", "low", "close"]].min(axis=1)
    return from_frame(pd.DataFrame(frame))


def test_days_without_a_full_calibration_span_before_them_are_not_scored() -> None:
    candles = btc(5)
    idx = _recalibrated(candles).usable_origins(candles)
    first_day = int(candles.open_time[0]) // DAY_MS * DAY_MS
    assert len(idx) > 0
    assert compute(candles).open_time[idx].min() >= first_day + 2 * DAY_MS


def test_a_days_calibration_does_not_change_when_that_day_and_later_change() -> None:
    candles = btc(5)
    predictor = _recalibrated(candles)
    idx = predictor.usable_origins(candles)
    ff = compute(candles)
    day = int(ff.open_time[idx].max()) // DAY_MS * DAY_MS
    today = idx[ff.open_time[idx] >= day]

    shocked = _shocked_after(candles, day, 1)
    assert not np.allclose(compute(shocked).close[today], ff.close[today])
    before, after = predictor.calibrations(candles, today), predictor.calibrations(shocked, today)
    assert list(before) == list(after) == [day]
    assert before[day].to_dict() == after[day].to_dict()
    # and the day's intervals are that calibration applied to the day's own minutes
    np.testing.assert_allclose(
        predictor.forecast_returns(shocked, today).half[0.8],
        after[day].intervals(compute(shocked), today)[0.8],
    )


def test_within_the_day_the_online_correction_reads_only_closes_up_to_each_origin() -> None:
    candles = btc(5)
    predictor = _recalibrated(candles)
    assert predictor.calibration.tracking is not None
    ff = compute(candles)
    idx = predictor.usable_origins(candles)
    day = int(ff.open_time[idx].max()) // DAY_MS * DAY_MS
    today = idx[ff.open_time[idx] >= day]
    noon = today[len(today) // 2]
    before = predictor.forecast_returns(candles, today)
    after = predictor.forecast_returns(_shocked_after(candles, int(ff.open_time[noon]) + 60_000, 2), today)
    upto = today <= noon
    for level in (0.8, 0.95):
        np.testing.assert_array_equal(after.half[level][upto], before.half[level][upto])
        assert not np.allclose(after.half[level][~upto], before.half[level][~upto])
    fixed = replace(predictor.calibrations(candles, today)[day], tracking=None).intervals(ff, today)
    assert not np.allclose(fixed[0.8], before.half[0.8])  # the correction moved the bands within the day


def test_recalibrated_intervals_cover_near_nominal_on_days_they_never_saw() -> None:
    candles = btc(12)
    predictor = _recalibrated(candles, None)  # the served method's own span
    assert predictor.calib_ms == SERVED.span_ms
    idx = predictor.usable_origins(candles)
    ff = compute(candles)
    y = targets(ff)[idx]
    idx, y = idx[np.isfinite(y).all(axis=1)], y[np.isfinite(y).all(axis=1)]
    out = predictor.forecast_returns(candles, idx)
    for level in (0.8, 0.95):
        coverage = (np.abs(y - out.point) <= out.half[level]).mean(axis=0)
        assert np.all(np.abs(coverage - level) < 0.04), (level, coverage)
