"""Scale models: how large an h-minute move to expect at an origin, from the minutes before it.

Conformal intervals are as sharp, and as right per regime, as the scale their scores are divided by.
RV30, the RMS of the last 30 one-minute returns, is noisy (30 squared returns), forgets the slow
component of volatility and knows nothing of the hour: when it happens to read low, volatility is
more likely to rise than fall, and at the US open the next half hour is wilder than the last.

:class:`HarScale` predicts the log variance of the h-minute residual from log close-to-close RV and
log Parkinson range over 5, 30 and 240 minutes (fast, medium and slow components, as in HAR models)
plus an hour-of-day term (a multiplicative hour profile), one regression per horizon. It is fitted by
QLIKE, the loss that is consistent for a variance and takes zero returns (flat minutes of a coarse
tick) in stride, where a regression of log |residual| would not. Online it costs a few rolling means
and one dot product per horizon.

Fourteen days of mostly calm minutes teach the regression that volatility reverts: its weights on
the fast components sum to well under one, so at the onset of a crash the fitted scale rises much
less than the last half hour's. ``rv30_weight`` shrinks the fit toward the random-walk scale (weight
one on log RV30, none elsewhere): the scale is HAR^(1−w)·(RV30·√h)^w, a geometric forecast
combination whose level the conformal quantiles then set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.dataset import horizon_scale
from cryptocast.tune.features import VOL_FLOOR, FeatureFrame, lag

HAR_WINDOWS = (5, 30, 240)  # minutes of each realised-volatility component
MIN_MINUTES = 30  # a window with fewer minutes present (after a hole) is undefined
PARKINSON = 1 / (4 * math.log(2))  # E[log(high/low)^2] = 4 ln 2 · variance for a Brownian minute
HOUR_MS = 3_600_000
HOURS_PER_DAY = 24
MINUTES_PER_HOUR = 60
RIDGE = 1e-9  # keeps the Newton system solvable when two regressors coincide (a flat stretch)
NEWTON_STEPS = 30
NEWTON_TOLERANCE = 1e-7
ARMIJO = 1e-4
MIN_STEP = 1e-6
RV30, HAR = "rv30", "har"


def hour_of(open_time: np.ndarray) -> np.ndarray:
    """UTC hour of day (0–23) of each open time."""
    return (open_time // HOUR_MS) % HOURS_PER_DAY


class ScaleModel(Protocol):
    """Per-origin, per-horizon scale of the residual, from the minutes up to the origin only."""

    @property
    def kind(self) -> str: ...

    @property
    def lookback(self) -> int:
        """Minutes of candles behind an origin that :meth:`predict` reads."""
        ...

    def predict(self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True, slots=True)
class Rv30Scale:
    """RV30·sqrt(h): the random-walk scaling of the last 30 minutes' volatility."""

    kind: str = RV30
    lookback: int = 0  # the features' own lookback covers it

    def predict(self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
        return horizon_scale(ff.vol[idx], horizons)

    def to_dict(self) -> dict:
        return {"kind": self.kind}


def _trailing_means(values: np.ndarray, windows: tuple[int, ...], idx: np.ndarray) -> list[np.ndarray]:
    """Mean of ``values`` over each window of rows ending at every ``idx``, skipping missing rows;
    NaN where fewer than ``min(window, MIN_MINUTES)`` rows are present. Sums run from the first row
    any window needs, so the same origin gives the same value in a month of data or a serving window."""
    start = max(int(idx.min()) - max(windows) + 1, 0) if len(idx) else 0
    part = values[start:]
    present = np.isfinite(part)
    sums = np.concatenate([[0.0], np.cumsum(np.where(present, part, 0.0))])
    counts = np.concatenate([[0], np.cumsum(present)])
    hi = idx - start + 1
    out = []
    for window in windows:
        lo = np.maximum(hi - window, 0)
        n = counts[hi] - counts[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (sums[hi] - sums[lo]) / n
        out.append(np.where(n >= min(window, MIN_MINUTES), mean, np.nan))
    return out


def _minute_variances(ff: FeatureFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per minute: squared close-to-close log return, and the Parkinson variance of its range."""
    log_close = np.log(ff.close)
    return (log_close - lag(log_close, 1)) ** 2, PARKINSON * ff.log_range**2


def hour_profile(ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
    """(24,) mean one-minute variance per UTC hour over the minutes ``idx``, relative to all of them
    (1 for an hour without minutes). Squared returns and ranges are averaged: both estimate the
    variance, and together they are less noisy than either."""
    squared, ranges = _minute_variances(ff)
    v = (squared[idx] + ranges[idx]) / 2
    ok = np.isfinite(v)
    hours = hour_of(ff.open_time[idx][ok])
    sums = np.bincount(hours, v[ok], HOURS_PER_DAY)
    counts = np.bincount(hours, minlength=HOURS_PER_DAY)
    overall = max(float(v[ok].mean()) if ok.any() else 0.0, VOL_FLOOR**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = sums / counts / overall
    return np.where((counts > 0) & (profile > 0), profile, 1.0)


def forward_season(profile: np.ndarray, open_time: np.ndarray, horizon: int) -> np.ndarray:
    """Mean of the hour profile over the ``horizon`` minutes after each origin."""
    per_minute = np.repeat(profile, MINUTES_PER_HOUR)
    cumulative = np.concatenate([[0.0], np.cumsum(np.tile(per_minute, 2))])
    minute = (open_time // MINUTE_MS) % (HOURS_PER_DAY * MINUTES_PER_HOUR)
    return (cumulative[minute + 1 + horizon] - cumulative[minute + 1]) / horizon


def regressors(
    ff: FeatureFrame,
    idx: np.ndarray,
    profile: np.ndarray,
    horizon: int,
    windows: tuple[int, ...] = HAR_WINDOWS,
) -> np.ndarray:
    """(origins, 2 + 2·windows): intercept, log RV and log Parkinson volatility per window, and the
    log of the hour profile over the horizon ahead."""
    columns = [np.ones(len(idx))]
    for values in _minute_variances(ff):
        columns += [0.5 * np.log(np.maximum(m, VOL_FLOOR**2)) for m in _trailing_means(values, windows, idx)]
    columns.append(0.5 * np.log(forward_season(profile, ff.open_time[idx], horizon)))
    return np.column_stack(columns)


def _qlike(x: np.ndarray, e2: np.ndarray, beta: np.ndarray) -> float:
    eta = x @ beta
    return float(np.mean(e2 * np.exp(-eta) + eta))


def fit_qlike(x: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Coefficients of log variance = x·beta minimising mean QLIKE (damped Newton)."""
    n, k = x.shape
    beta = np.zeros(k)
    beta[0] = math.log(max(float(e2.mean()), VOL_FLOOR**2))
    loss = _qlike(x, e2, beta)
    for _ in range(NEWTON_STEPS):
        w = e2 * np.exp(-(x @ beta))
        grad = x.T @ (1 - w) / n
        hessian = (x * w[:, None]).T @ x / n + RIDGE * np.eye(k)
        step = np.linalg.solve(hessian, grad)
        t = 1.0
        while t > MIN_STEP:
            trial = beta - t * step
            trial_loss = _qlike(x, e2, trial)
            if trial_loss <= loss - ARMIJO * t * float(grad @ step):
                break
            t /= 2
        else:
            break
        beta, improved = trial, loss - trial_loss
        loss = trial_loss
        if improved < NEWTON_TOLERANCE:
            break
    return beta


@dataclass(frozen=True, slots=True)
class HarScale:
    """exp(x_h·beta_h / 2): the fitted conditional standard deviation of each horizon's residual."""

    coef: np.ndarray  # (regressors, horizons)
    profile: np.ndarray  # (24,) relative one-minute variance per UTC hour
    horizons: tuple[int, ...]
    windows: tuple[int, ...] = HAR_WINDOWS  # minutes of each realised-volatility component
    rv30_weight: float = 0.0  # shrinkage toward the random-walk RV30 scale (0: the fit alone)
    kind: str = HAR

    @property
    def lookback(self) -> int:
        return max(self.windows)

    @classmethod
    def fit(
        cls,
        ff: FeatureFrame,
        idx: np.ndarray,
        residuals: np.ndarray,
        horizons: tuple[int, ...],
        windows: tuple[int, ...] = HAR_WINDOWS,
        rv30_weight: float = 0.0,
    ) -> HarScale:
        """The hour profile of the minutes ``idx``, then one QLIKE regression per horizon (column of
        ``residuals``) on those origins."""
        profile = hour_profile(ff, idx)
        coef = []
        for j, h in enumerate(horizons):
            x = regressors(ff, idx, profile, h, windows)
            ok = np.isfinite(x).all(axis=1) & np.isfinite(residuals[:, j])
            if not ok.any():
                raise ValueError("no origins with the scale model's inputs")
            coef.append(fit_qlike(x[ok], residuals[ok, j] ** 2))
        return cls(np.column_stack(coef), profile, tuple(horizons), tuple(windows), rv30_weight)

    def predict(self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
        if tuple(horizons) != self.horizons:
            raise ValueError(f"fitted for horizons {self.horizons}, asked for {tuple(horizons)}")
        log_var = np.column_stack(
            [
                regressors(ff, idx, self.profile, h, self.windows) @ self.coef[:, j]
                for j, h in enumerate(horizons)
            ]
        )
        log_scale = log_var / 2
        if self.rv30_weight:
            rv30 = np.log(np.maximum(horizon_scale(ff.vol[idx], horizons), VOL_FLOOR))
            log_scale = log_scale + self.rv30_weight * np.maximum(rv30 - log_scale, 0.0)
        return np.maximum(np.exp(log_scale), VOL_FLOOR * np.sqrt(np.asarray(horizons, dtype=np.float64)))

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "windows": list(self.windows),
            "coef": self.coef.tolist(),
            "profile": self.profile.tolist(),
            "horizons": list(self.horizons),
            "rv30_weight": self.rv30_weight,
        }


def scale_from_dict(values: dict) -> ScaleModel:
    if values["kind"] == RV30:
        return Rv30Scale()
    if values["kind"] == HAR:
        return HarScale(
            np.asarray(values["coef"], dtype=np.float64),
            np.asarray(values["profile"], dtype=np.float64),
            tuple(values["horizons"]),
            tuple(values["windows"]),
            float(values.get("rv30_weight", 0.0)),  # stored before the shrinkage: none
        )
    raise ValueError(f"unknown scale model {values['kind']!r}")
