"""Intervals recalibrated every day, as they are served.

The daily retrain refits the persistence baseline's conformal calibration (its scale model and its
quantiles) on the latest days, so a served interval is never older than a day. Scoring a month with
one calibration fitted before it measures a system that does not exist (and misses whenever the
volatility regime drifts); this wrapper replays the daily refit instead: for origins on day d, the
calibration's own method is refitted on the origins of the ``calib_ms`` before d (by default the
method's span) whose every target had closed by the start of d. Where the method corrects its level
online (:mod:`cryptocast.tune.tracking`), each day's correction starts where the previous day's
calibration left it, as the live refit continues the served one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import Calibration
from cryptocast.tune.dataset import DAY_MS, targets
from cryptocast.tune.features import FeatureFrame
from cryptocast.tune.predictor import Predictor, ReturnForecast

MIN_CALIBRATION_SHARE = 0.5  # of the calibration span's minutes; a day with fewer is not scored


class DailyRecalibrated(Predictor):
    """``inner``'s point forecasts with conformal intervals refitted each day on the span before it."""

    def __init__(self, inner: Predictor, calib_ms: int | None = None, period_ms: int = DAY_MS) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.spec = inner.spec
        self.seq_len = inner.seq_len
        self.horizons = inner.horizons
        self.calibration = inner.calibration
        self.calib_ms = calib_ms or inner.calibration.method.span_ms
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

    def calibrations(
        self, candles: Candles, idx: np.ndarray, cache: dict | None = None
    ) -> dict[int, Calibration]:
        """The calibration refitted for each period (its start, ms) that holds an origin of ``idx``."""
        return self._refit(candles, idx, {} if cache is None else cache)[1]

    def _refit(
        self, candles: Candles, idx: np.ndarray, cache: dict
    ) -> tuple[ReturnForecast, dict[int, Calibration]]:
        ff = self.features(candles, cache)
        known, y = self._known(candles, ff)
        everything = np.union1d(known, idx)
        full = self.inner.forecast_returns(candles, everything, cache)
        rows = np.searchsorted(everything, idx)
        wanted = np.unique(ff.open_time[idx] // self.period_ms * self.period_ms)
        chain = self._chain_start(ff, known)
        periods = (
            wanted
            if chain is None
            else np.union1d(wanted, np.arange(chain, wanted.max(initial=0) + 1, self.period_ms))
        )
        fitted = {}
        previous = None
        for start in periods:
            cal = self._calibration_origins(ff, known, int(start))
            if len(cal) == 0:
                continue
            residuals = y[cal] - full.point[np.searchsorted(everything, cal)]
            refit = self.calibration.refit(ff, cal, residuals, self.horizons)
            if chain is not None and start >= chain:  # the correction goes on from the day before
                refit = refit.carried_from(previous, ff, self.horizons, self._around(ff))
                previous = refit
            if start in wanted:
                fitted[int(start)] = refit
        return ReturnForecast(full.point[rows], {}, full.source), fitted

    def _chain_start(self, ff: FeatureFrame, known: np.ndarray) -> int | None:
        """Where the online level correction starts from 0 (None: the method has none): the first
        period with a whole calibration span of candles behind it. Every refit from there carries
        the state of the one before, so a period's calibration never depends on which were asked."""
        if self.calibration.tracking is None or len(known) == 0:
            return None
        ready = int(ff.open_time[known[0]]) + self.calib_ms
        return -(-ready // self.period_ms) * self.period_ms

    def _around(self, ff: FeatureFrame) -> Callable[[np.ndarray], np.ndarray]:
        def around(rows: np.ndarray) -> np.ndarray:  # the point forecast the bands are centred on
            return self.inner.point_returns(ff, rows)

        return around

    def forecast_returns(
        self, candles: Candles, idx: np.ndarray, cache: dict | None = None
    ) -> ReturnForecast:
        cache = {} if cache is None else cache
        out, fitted = self._refit(candles, idx, cache)
        ff = self.features(candles, cache)
        half = {level: np.full(out.point.shape, np.nan) for level in self.calibration.quantiles}
        starts = ff.open_time[idx] // self.period_ms * self.period_ms
        for start, calibration in fitted.items():
            today = starts == start
            for level, widths in calibration.intervals(
                ff, idx[today], self.horizons, self._around(ff)
            ).items():
                half[level][today] = widths
        return ReturnForecast(out.point, half, out.source)
