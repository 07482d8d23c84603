"""Intervals recalibrated every day, as they are served.

The daily retrain refits the persistence baseline's conformal calibration on the latest days, so a
served interval is never older than a day. Scoring a month with one calibration fitted before it
measures a system that does not exist (and misses whenever the volatility regime drifts); this
wrapper replays the daily refit instead: for origins on day d, the calibration is fitted on the
origins of the ``calib_ms`` before d whose every target had closed by the start of d.
"""

from __future__ import annotations

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import Calibration
from cryptocast.tune.dataset import DAY_MS, horizon_scale, targets
from cryptocast.tune.features import FeatureFrame
from cryptocast.tune.predictor import Predictor, ReturnForecast

MIN_CALIBRATION_SHARE = 0.5  # of the calibration span's minutes; a day with fewer is not scored


class DailyRecalibrated(Predictor):
    """``inner``'s point forecasts with conformal intervals refitted each day on the span before it."""

    def __init__(self, inner: Predictor, calib_ms: int = 2 * DAY_MS, period_ms: int = DAY_MS) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.spec = inner.spec
        self.seq_len = inner.seq_len
        self.horizons = inner.horizons
        self.calibration = inner.calibration
        self.calib_ms = calib_ms
        self.period_ms = period_ms

    def features(self, candles: Candles, cache: dict | None = None) -> FeatureFrame:
        return self.inner.features(candles, cache)

    def point_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        return self.inner.point_returns(ff, idx)

    def _known(self, candles: Candles, ff: FeatureFrame) -> tuple[np.ndarray, np.ndarray]:
        """Origins with a window and every target, and those targets."""
        y = targets(ff, self.horizons)
        known = self.inner.usable_origins(candles)
        return known[np.isfinite(y[known]).all(axis=1)], y

    def _calibration_origins(self, ff: FeatureFrame, known: np.ndarray, period_start: int) -> np.ndarray:
        settled = (max(self.horizons) + 1) * MINUTE_MS  # the last target closes this long after its origin
        times = ff.open_time[known]
        return known[(times >= period_start - self.calib_ms) & (times + settled <= period_start)]

    def usable_origins(self, candles: Candles) -> np.ndarray:
        """The inner predictor's origins on days with enough calibration data before them."""
        ff = self.features(candles)
        known, _ = self._known(candles, ff)
        idx = self.inner.usable_origins(candles)
        starts = ff.open_time[idx] // self.period_ms * self.period_ms
        enough = MIN_CALIBRATION_SHARE * self.calib_ms / MINUTE_MS
        ok = {s for s in np.unique(starts) if len(self._calibration_origins(ff, known, int(s))) >= enough}
        return idx[np.isin(starts, list(ok))]

    def forecast_returns(self, candles: Candles, idx: np.ndarray, cache: dict | None = None) -> ReturnForecast:
        cache = {} if cache is None else cache
        ff = self.features(candles, cache)
        known, y = self._known(candles, ff)
        everything = np.union1d(known, idx)
        full = self.inner.forecast_returns(candles, everything, cache)
        at = {int(i): k for k, i in enumerate(everything)}
        rows = np.array([at[int(i)] for i in idx], dtype=np.int64)
        scale = horizon_scale(ff.vol[idx], self.horizons)
        half = {level: np.full(scale.shape, np.nan) for level in self.calibration.quantiles}
        starts = ff.open_time[idx] // self.period_ms * self.period_ms
        for start in np.unique(starts):
            cal = self._calibration_origins(ff, known, int(start))
            if len(cal) == 0:
                continue
            cal_rows = np.array([at[int(i)] for i in cal], dtype=np.int64)
            fitted = Calibration.fit(
                y[cal] - full.point[cal_rows],
                horizon_scale(ff.vol[cal], self.horizons) if self.calibration.scaled else None,
                tuple(half),
            )
            today = starts == start
            for level, widths in fitted.half_widths(scale[today]).items():
                half[level][today] = widths
        return ReturnForecast(full.point[rows], half, full.source)
