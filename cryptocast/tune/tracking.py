"""Adaptive conformal inference: each band's level follows its own realised hits, online.

A calibration fitted on the 14 days before today sets each band's width in units of the scale. When
volatility drifts within a month, that level lags: a calming month over-covers and a heating one
under-covers, by up to 5 points at 30 minutes. Adaptive conformal inference (Gibbs and Candès 2021),
in its quantile-tracking form (Angelopoulos, Candès and Tibshirani 2023), corrects the level from
the hits themselves. Each band's half-width is multiplied by exp(x), one x per level and horizon,
and every time an origin's target matures x moves by ``step`` · (miss − (1 − level)). Once the
outcomes of T origins are in, their miss rate is off nominal by exactly x's net move / (step · T):
as long as x stays bounded, coverage is nominal over any long enough run, whatever the data.

**No look-ahead.** The target of an origin at horizon h closes h minutes later. At origin t, x has
moved only for the origins up to t − h, each judged by the band it was actually given.

**Where the state lives.** x is never kept between forecasts; it is recomputed from candles, and
each calibration stores only where it starts:

* A calibration's :class:`Tracking` holds x per level and horizon and the first origin after its fit
  (:attr:`Tracking.since_ms`). A first calibration starts at 0.
* For every forecast, x continues from there over the origins since, with the calibration's own
  bands and the outcomes closed by then. The served window holds :data:`REPLAY_MINUTES` (a day and
  two hours) more candles than the scale needs, so a served band is the band the walk-forward
  evaluation scores for that minute. (A calibration older than that, a daily refit missed, replays
  from the window's first minute.)
* The daily refit carries the state on (:meth:`Tracking.advance`): the previous calibration's run
  over the origins it served, with every outcome now known, ends where the new one starts. The
  walk-forward does the same from day to day, so the state after any day is the same live and
  offline. With a step of 0.001 an error in the level is worked off with a time constant of 1.5 days
  (80 %) to 3 days (95 %).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryptocast.tune.features import DAY_MINUTES, FeatureFrame

REPLAY_MINUTES = DAY_MINUTES + 120  # the refit period, and slack for a late daily refit
STEP = 0.001  # per matured outcome, in log half-width


def track(
    log_scores: np.ndarray,
    lags: np.ndarray,
    miss_rate: np.ndarray,
    step: float,
    start: np.ndarray,
    settle: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the correction over consecutive minutes.

    ``log_scores`` (minutes, series): log(|outcome| / half-width before correction), NaN where there
    is no band or no outcome; the outcome of row r in series j is known from row r + ``lags[j]``.
    Returns x as used at each row, and x once every outcome has been seen when ``settle`` (the
    refit's replay, whose outcomes are all known), else x after the last row's known outcomes."""
    n, k = log_scores.shape
    used = np.empty((n, k))
    end = np.empty(k)
    for j in range(k):
        lag, rate, x = int(lags[j]), float(miss_rate[j]), float(start[j])
        scores = log_scores[:, j].tolist()
        xs = [0.0] * n
        for r in range(n):
            if r >= lag:
                s = scores[r - lag]
                if s == s:  # noqa: PLR0124 - not NaN (a zero return, log score −inf, is a hit); faster than isnan here
                    x += step * ((1.0 if s > xs[r - lag] else 0.0) - rate)
            xs[r] = x
        if settle:
            for r in range(max(n - lag, 0), n):
                s = scores[r]
                if s == s:  # noqa: PLR0124 - not NaN, as above
                    x += step * ((1.0 if s > xs[r] else 0.0) - rate)
        used[:, j] = xs
        end[j] = x
    return used, end


def _series(levels: tuple[float, ...], horizons: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Lag and nominal miss rate of each (level, horizon) series, levels outermost."""
    lags = np.tile(np.asarray(horizons), len(levels))
    rates = np.repeat([1 - level for level in levels], len(horizons))
    return lags, rates


def _stack(bands: dict[float, np.ndarray]) -> np.ndarray:
    return np.concatenate([bands[level] for level in sorted(bands)], axis=1)


def _unstack(values: np.ndarray, levels: tuple[float, ...], n_horizons: int) -> dict[float, np.ndarray]:
    return {level: values[..., i * n_horizons : (i + 1) * n_horizons] for i, level in enumerate(levels)}


Bands = Callable[[np.ndarray], dict[float, np.ndarray]]  # grid rows → half-widths before correction
Point = Callable[[np.ndarray], np.ndarray]  # grid rows → point forecast (log returns) the bands centre on


@dataclass(frozen=True, slots=True)
class Tracking:
    """The correction's state when its calibration was fitted: x per level and horizon, and the
    first origin whose outcome that state has not seen."""

    step: float
    since_ms: int
    start: dict[float, np.ndarray]  # (horizons,) log multiplier per level

    @classmethod
    def fresh(cls, step: float, since_ms: int, levels: tuple[float, ...], n_horizons: int) -> Tracking:
        return cls(step, since_ms, {level: np.zeros(n_horizons) for level in levels})

    def _replay(
        self,
        ff: FeatureFrame,
        low: int,
        last: int,
        known: int,
        horizons: tuple[int, ...],
        bands: Bands,
        point: Point,
        settle: bool,
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Run from :attr:`since_ms` (or the first row of ``ff``) to row ``last``, reading outcomes
        whose close is at row ``known`` or before. Returns the first row of the arrays (``low`` or the
        first replayed, the earlier), the bands before correction and x used on those rows (the
        start before the replay), and the end state."""
        levels = tuple(sorted(self.start))
        start = np.concatenate([self.start[level] for level in levels])
        first = int(np.searchsorted(ff.open_time, self.since_ms))
        rows = np.arange(min(first, low), last + 1)
        raw = _stack(bands(rows))
        log_close = np.log(ff.close)
        forecast = point(rows)
        outcome = np.full((len(rows), len(horizons)), np.nan)
        for j, h in enumerate(horizons):
            seen = (rows >= first) & (rows + h <= min(known, len(log_close) - 1))
            outcome[seen, j] = np.abs(log_close[rows[seen] + h] - log_close[rows[seen]] - forecast[seen, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            log_scores = np.log(np.tile(outcome, len(levels)) / raw)
        lags, rates = _series(levels, horizons)
        used, end = track(log_scores, lags, rates, self.step, start, settle)
        return int(rows[0]) if len(rows) else low, raw, used, end

    def apply(
        self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...], bands: Bands, point: Point
    ) -> dict[float, np.ndarray]:
        """Corrected half-widths at the origins ``idx`` (sorted rows of ``ff``). At origin t the
        correction has seen the outcomes closed by t, each scored against the band it was given; one
        replay serves every origin, since a later origin's run passes through the earlier ones."""
        levels = tuple(sorted(self.start))
        if len(idx) == 0:
            return {level: np.empty((0, len(horizons))) for level in levels}
        last = int(idx[-1])
        low, raw, used, _ = self._replay(ff, int(idx[0]), last, last, horizons, bands, point, False)
        out = _unstack((raw * np.exp(used))[idx - low], levels, len(horizons))
        for narrow, wide in itertools.pairwise(levels):  # keep the bands nested
            out[wide] = np.maximum(out[wide], out[narrow])
        return out

    def advance(
        self, ff: FeatureFrame, until_ms: int, horizons: tuple[int, ...], bands: Bands, point: Point
    ) -> dict[float, np.ndarray]:
        """The state once every outcome of the origins before ``until_ms`` is in: where the next
        refit's correction starts. The origins replayed are the ones this calibration served."""
        last = int(np.searchsorted(ff.open_time, until_ms)) - 1
        first = int(np.searchsorted(ff.open_time, self.since_ms))
        if last < first:
            return self.start
        _, _, _, end = self._replay(ff, first, last, last + max(horizons), horizons, bands, point, True)
        return _unstack(end, tuple(sorted(self.start)), len(horizons))

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "since_ms": self.since_ms,
            "start": {str(k): v.tolist() for k, v in self.start.items()},
        }

    @classmethod
    def from_dict(cls, values: dict) -> Tracking:
        start = {float(k): np.asarray(v, dtype=np.float64) for k, v in values["start"].items()}
        return cls(float(values["step"]), int(values["since_ms"]), start)
