"""The HAR scale model recovers a known volatility process and hour profile from candles alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import from_frame
from cryptocast.tune.dataset import HORIZONS, targets
from cryptocast.tune.features import compute
from cryptocast.tune.volatility import HarScale, Rv30Scale, hour_of, scale_from_dict

DAYS = 10
TICKS = 10  # price steps within a minute, for its high and low
START_MS = 1_700_006_400_000  # a UTC midnight
HOUR_PROFILE = 1 + 0.8 * np.exp(
    -0.5 * ((np.arange(24) - 14) / 1.5) ** 2
)  # an afternoon burst, like the US open
BASE_VOL = 5e-4
JUMP = 6.0


def _synthetic(seed: int = 0, jump_at: int | None = None) -> tuple:
    """Minutes whose volatility is a slow log-AR(1) regime times the hour profile (times JUMP from the
    minute ``jump_at`` on, a crash); returns candles and each minute's true one-minute volatility."""
    rng = np.random.default_rng(seed)
    n = DAYS * 1440
    times = START_MS + MINUTE_MS * np.arange(n)
    regime = np.zeros(n)
    shocks = rng.normal(0, 0.02, n)
    for t in range(1, n):  # persistence ~ 300 minutes
        regime[t] = 0.9967 * regime[t - 1] + shocks[t]
    vol = BASE_VOL * np.exp(regime) * HOUR_PROFILE[hour_of(times)]
    if jump_at is not None:
        vol[jump_at:] *= JUMP
    steps = rng.normal(size=(n, TICKS)) * (vol[:, None] / np.sqrt(TICKS))
    path = 100 * np.exp(np.cumsum(steps.ravel())).reshape(n, TICKS)
    opens = np.concatenate([[100.0], path[:-1, -1]])
    frame = pd.DataFrame(
        {
            "open_time_ms": times,
            "open": opens,
            "close": path[:, -1],
            "volume": 1.0,
            "high": np.maximum(path.max(axis=1), opens),
            "low": np.minimum(path.min(axis=1), opens),
        }
    )
    return from_frame(frame[["open_time_ms", "open", "high", "low", "close", "volume"]]), vol


def test_har_recovers_the_hour_profile_and_tracks_the_true_volatility_closer_than_rv30() -> None:
    candles, vol = _synthetic()
    ff = compute(candles)
    y = targets(ff)
    idx = np.flatnonzero(ff.usable & np.isfinite(y).all(axis=1))
    train, test = idx[idx < 6 * 1440], idx[idx >= 7 * 1440]
    model = HarScale.fit(ff, train, y[train], HORIZONS)
    # a variance profile, blurred by the regime over six days: its shape and its peak, not each hour exactly
    assert np.corrcoef(np.log(model.profile), np.log(HOUR_PROFILE**2))[0, 1] > 0.9
    assert int(np.argmax(model.profile)) in (13, 14, 15)
    true = np.stack(
        [np.sqrt(np.convolve(vol**2, np.ones(h), "full")[h : h + len(vol)]) for h in HORIZONS], axis=1
    )
    har, rv30 = model.predict(ff, test, HORIZONS), Rv30Scale().predict(ff, test, HORIZONS)
    for j in range(len(HORIZONS)):
        error_har = np.abs(np.log(har[:, j] / true[test, j]))
        error_rv30 = np.abs(np.log(rv30[:, j] / true[test, j]))
        assert np.median(error_har) < 0.15, HORIZONS[j]  # within ~15 % of the truth at the median
        if HORIZONS[j] <= 5:  # at 15-30 minutes this smooth synthetic volatility is RV30's best case
            assert np.median(error_har) < np.median(error_rv30), HORIZONS[j]


def test_the_scale_reads_only_the_past_and_round_trips() -> None:
    candles, _ = _synthetic(1)
    ff = compute(candles)
    y = targets(ff)
    idx = np.flatnonzero(ff.usable & np.isfinite(y).all(axis=1))[:3000]
    model = HarScale.fit(ff, idx, y[idx], HORIZONS)
    restored = scale_from_dict(model.to_dict())
    at = idx[-10:]
    np.testing.assert_array_equal(restored.predict(ff, at, HORIZONS), model.predict(ff, at, HORIZONS))
    cut = int(ff.open_time[at[-1]]) + MINUTE_MS  # nothing after the last origin
    short = compute(candles.until(cut).since(cut - (model.lookback + 61) * MINUTE_MS))
    rows = np.searchsorted(short.open_time, ff.open_time[at[-1:]])
    np.testing.assert_allclose(
        model.predict(short, rows, HORIZONS), model.predict(ff, at[-1:], HORIZONS), rtol=1e-9
    )
    daily = HarScale.fit(ff, idx, y[idx], HORIZONS, windows=(5, 30, 240, 1440))  # a daily component too
    assert daily.lookback == 1440 and daily.coef.shape[0] == 2 + 2 * 4
    np.testing.assert_array_equal(
        scale_from_dict(daily.to_dict()).predict(ff, at, HORIZONS), daily.predict(ff, at, HORIZONS)
    )


def test_shrinking_toward_rv30_widens_only_where_rv30_reads_higher_and_catches_a_crash_sooner() -> None:
    jump = 8 * 1440 + 600  # days of calm, then volatility six times higher for good
    candles, vol = _synthetic(2, jump_at=jump)
    ff = compute(candles)
    y = targets(ff)
    idx = np.flatnonzero(ff.usable & np.isfinite(y).all(axis=1))
    train = idx[idx < 7 * 1440]
    fit = HarScale.fit(ff, train, y[train], HORIZONS)
    shrunk = HarScale.fit(ff, train, y[train], HORIZONS, rv30_weight=0.5)
    np.testing.assert_array_equal(shrunk.coef, fit.coef)  # the same regression; only the scale moves
    everywhere = idx[idx >= 7 * 1440]
    har, rv30 = fit.predict(ff, everywhere, HORIZONS), Rv30Scale().predict(ff, everywhere, HORIZONS)
    mixed = shrunk.predict(ff, everywhere, HORIZONS)
    above = rv30 > har
    np.testing.assert_allclose(mixed[~above], har[~above])  # never narrower, nor moved where RV30 is lower
    np.testing.assert_allclose(mixed[above], np.sqrt(har[above] * rv30[above]))  # halfway, in logs
    # the first hour after the crash: the fitted scale expects volatility to revert and lags the truth
    onset = idx[(idx >= jump + 30) & (idx < jump + 90)]
    true = np.sqrt(np.asarray(HORIZONS, dtype=np.float64))[None, :] * vol[onset, None]
    lag_fit = np.median(np.log(true / fit.predict(ff, onset, HORIZONS)))
    lag_shrunk = np.median(np.log(true / shrunk.predict(ff, onset, HORIZONS)))
    assert lag_fit > 0.15  # the fit alone stays well below the new volatility
    assert 0 < lag_shrunk < 0.75 * lag_fit  # shrunk, it closes a good part of that lag
    np.testing.assert_array_equal(
        scale_from_dict(shrunk.to_dict()).predict(ff, onset, HORIZONS), shrunk.predict(ff, onset, HORIZONS)
    )
    stored_before = {k: v for k, v in fit.to_dict().items() if k != "rv30_weight"}
    assert scale_from_dict(stored_before).rv30_weight == 0.0  # a scale stored before the shrinkage
