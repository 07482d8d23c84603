"""Targets, forecast origins and time splits.

The target at origin t (the close of minute t) for horizon h is the log return
``log(close(t+h) / close(t))``: the baseline, persistence of close(t), predicts exactly 0, and the
price forecast is ``close(t) · exp(prediction)``. A distributional network also learns the realised
variance of the next h minutes, the sum of their squared one-minute log returns: an unbiased and far
less noisy target for the variance of the h-minute return than its own square. An origin is usable when its ``seq_len`` feature
rows are all defined (so its window and lookback hold no missing minute) and, for training and
evaluation, every target minute exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.features import FeatureFrame

HORIZONS = (1, 5, 15, 30)
DAY_MS = 86_400_000


def targets(ff: FeatureFrame, horizons: tuple[int, ...] = HORIZONS) -> np.ndarray:
    """(minutes, horizons) log returns close(t+h)/close(t); NaN where either minute is missing."""
    log_close = np.log(ff.close)
    out = np.full((len(log_close), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        out[:-h, j] = log_close[h:] - log_close[:-h]
    return out


def realised_variance(ff: FeatureFrame, horizons: tuple[int, ...] = HORIZONS) -> np.ndarray:
    """(minutes, horizons) sum of squared 1-minute log returns over t+1 … t+h; NaN unless all present."""
    log_close = np.log(ff.close)
    r2 = np.zeros(len(log_close))
    r2[1:] = (log_close[1:] - log_close[:-1]) ** 2
    missing = ~np.isfinite(r2)
    missing[0] = False
    sums = np.cumsum(np.where(missing, 0.0, r2))
    holes = np.cumsum(missing)
    out = np.full((len(log_close), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        if len(log_close) > h:
            whole = holes[h:] == holes[:-h]
            out[:-h, j] = np.where(whole & np.isfinite(log_close[:-h]), sums[h:] - sums[:-h], np.nan)
    return out


def horizon_scale(vol: np.ndarray, horizons: tuple[int, ...] = HORIZONS) -> np.ndarray:
    """Expected size of an h-minute move given 1-minute volatility (random-walk scaling)."""
    return vol[:, None] * np.sqrt(np.asarray(horizons, dtype=np.float64))[None, :]


def complete_windows(usable: np.ndarray, seq_len: int) -> np.ndarray:
    """True at t when rows t-seq_len+1 … t are all usable."""
    run = np.concatenate([[0], np.cumsum(usable.astype(np.int64))])
    out = np.zeros(len(usable), dtype=bool)
    if len(usable) >= seq_len:
        out[seq_len - 1 :] = (run[seq_len:] - run[:-seq_len]) == seq_len
    return out


def origins(ff: FeatureFrame, seq_len: int, y: np.ndarray | None = None) -> np.ndarray:
    """Indices of usable origins; with targets ``y``, only those whose every target exists."""
    ok = complete_windows(ff.usable, seq_len)
    if y is not None:
        ok &= np.isfinite(y).all(axis=1)
    return np.flatnonzero(ok)


@dataclass(frozen=True, slots=True)
class SplitSpans:
    """Lengths (ms) of the spans carved from the end of the data; training gets the rest."""

    val_ms: int = 2 * DAY_MS
    calib_ms: int = 2 * DAY_MS
    test_ms: int = 28 * DAY_MS  # the gate's window: 28 complete days give it 80 % power at 2–3 %


@dataclass(frozen=True, slots=True)
class Split:
    """Origin indices per span, and the span boundaries (ms) for the record."""

    train: np.ndarray
    val: np.ndarray
    calib: np.ndarray
    test: np.ndarray
    bounds: tuple[int, int, int, int, int]  # start, val start, calib start, test start, end


def split(
    ff: FeatureFrame, idx: np.ndarray, spans: SplitSpans, horizons: tuple[int, ...] = HORIZONS
) -> Split:
    """Time-ordered spans; an origin belongs to a span only if all its targets lie inside it too."""
    end = int(ff.open_time[-1]) + MINUTE_MS
    test = end - spans.test_ms
    calib = test - spans.calib_ms
    val = calib - spans.val_ms
    start = int(ff.open_time[0])
    if val <= start:
        raise ValueError("not enough data for the training, validation, calibration and test spans")
    t = ff.open_time[idx]
    reach = t + max(horizons) * MINUTE_MS

    def inside(a: int, b: int) -> np.ndarray:
        return idx[(t >= a) & (reach < b)]

    return Split(
        inside(start, val),
        inside(val, calib),
        inside(calib, test),
        inside(test, end),
        (start, val, calib, test, end),
    )


def day_of(open_time: np.ndarray, period_ms: int = DAY_MS) -> np.ndarray:
    """Period number (UTC days by default) of each origin, for per-day averages."""
    return open_time // period_ms
