"""Walk-forward scores of forecasts against persistence of close(t), per horizon and per day.

Point errors are in price units, ``close(t)·(exp(y) − exp(ŷ))``; interval widths, interval scores
and pinball losses in basis points of close(t) (log-return units × 10⁴), so pairs of any price level
compare. Every average also comes per day with a standard error, and skill comes with a one-sided
p-value on the per-day differences and the minimum effect that test can detect, so a 0.3 %
difference can be told from noise and a null result from a blind test. Coverage has two standard
errors: across days, and the pooled binomial one with an effective sample of minutes / h
(overlapping h-minute targets are not independent).

Calibration is checked where it matters (:mod:`cryptocast.tune.scores`): the interval and weighted
interval scores, a PIT histogram, Kupiec and Christoffersen tests per band, and coverage per decile
of RV30 at the origin (the same bins for every model, so models compare on the same minutes) and
per UTC hour, with day-block standard errors. Only complete days (every minute of the day scored)
enter the paired tests, as in the promotion gate. The newest forecasts at one horizon are kept as a
sample, for the report's plot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune import scores
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import LEVELS
from cryptocast.tune.dataset import DAY_MS, HORIZONS, day_of, targets
from cryptocast.tune.features import compute
from cryptocast.tune.gate import ALPHA
from cryptocast.tune.predictor import Predictor, ReturnForecast
from cryptocast.tune.stats import POWER, PairedTest, mean_se, paired_test

BPS = 1e4
REFERENCE = "persistence"
SAMPLE_ORIGINS = 240  # the newest four hours of forecasts, kept in the report for the plot
SAMPLE_HORIZON = 15
VOL_GROUPS = 10  # deciles of RV30 at the origin
HOURS = 24
HOUR_MS = 3_600_000
TEST_LEVEL = ALPHA / len(HORIZONS)  # the level a single horizon faces in the gate (Holm's first step)


@dataclass(frozen=True, slots=True)
class Truth:
    """Evaluation origins (grid indices) with their realised log returns, close and day."""

    idx: np.ndarray
    y: np.ndarray
    close: np.ndarray
    open_time: np.ndarray
    day: np.ndarray
    vol: np.ndarray  # RV30 at the origin
    complete: np.ndarray  # per origin: its day has every minute scored

    @property
    def hour(self) -> np.ndarray:
        return (self.open_time // HOUR_MS) % HOURS

    def vol_decile(self) -> tuple[np.ndarray, np.ndarray]:
        """Decile (0–9) of each origin's RV30 among the scored origins, and the decile edges."""
        edges = np.quantile(self.vol, np.arange(1, VOL_GROUPS) / VOL_GROUPS)
        return np.searchsorted(edges, self.vol, side="right"), edges


def truth(
    candles: Candles, predictors: list[Predictor], since_ms: int | None = None, period_ms: int = DAY_MS
) -> Truth:
    """Origins where every predictor has a window and every target minute exists."""
    ff = compute(candles)
    y = targets(ff)
    ok = np.isfinite(y).all(axis=1)
    for predictor in predictors:
        mask = np.zeros(len(ok), dtype=bool)
        mask[predictor.usable_origins(candles)] = True
        ok &= mask
    if since_ms is not None:
        ok &= ff.open_time >= since_ms
    idx = np.flatnonzero(ok)
    day = day_of(ff.open_time[idx], period_ms)
    _, index, counts = np.unique(day, return_inverse=True, return_counts=True)
    complete = (counts == period_ms // MINUTE_MS)[index]
    return Truth(idx, y[idx], ff.close[idx], ff.open_time[idx], day, ff.vol[idx], complete)


def price_errors(t: Truth, point: np.ndarray) -> np.ndarray:
    return t.close[:, None] * (np.exp(t.y) - np.exp(point))


def daily_mae(t: Truth, point: np.ndarray) -> np.ndarray:
    """(days, horizons) mean absolute price error per day."""
    err = np.abs(price_errors(t, point))
    return np.stack([err[t.day == d].mean(axis=0) for d in np.unique(t.day)]) if len(t.idx) else err[:0]


def _pinball(y: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    diff = y - q
    return np.maximum(tau * diff, (tau - 1) * diff)


def _per_day(values: np.ndarray, day: np.ndarray) -> np.ndarray:
    return np.array([values[day == d].mean() for d in np.unique(day)])


def _versus(baseline: np.ndarray, model: np.ndarray, complete_days: np.ndarray) -> dict:
    """The gate's test of ``model`` against ``baseline`` on per-day losses of the complete days."""
    base, mine = baseline[complete_days], model[complete_days]
    test: PairedTest = paired_test(base - mine, TEST_LEVEL)
    improvement, mde = test.relative(float(np.mean(base)) if len(base) else float("nan"))
    return {"days": test.days, "improvement": improvement, "p": test.p, "mde": mde}


def _grouped(inside: np.ndarray, group: np.ndarray, groups: int, day: np.ndarray) -> dict:
    cov, se, n = scores.grouped_coverage(inside, group, groups, day)
    return {"coverage": cov.tolist(), "se": se.tolist(), "n": n.astype(int).tolist()}


def _horizon_scores(t: Truth, f: ReturnForecast, j: int, h: int, vol_decile: np.ndarray) -> dict:
    y, p = t.y[:, j], f.point[:, j]
    err = t.close * (np.exp(y) - np.exp(p))
    base = t.close * (np.exp(y) - 1.0)
    mae, base_mae = float(np.mean(np.abs(err))), float(np.mean(np.abs(base)))
    day_mae, day_base = _per_day(np.abs(err), t.day), _per_day(np.abs(base), t.day)
    complete_days = _per_day(t.complete.astype(float), t.day) == 1.0
    daily_skill, daily_skill_se = mean_se(1 - day_mae / day_base)
    point_test = _versus(day_base, day_mae, complete_days)
    out = {
        "source": f.source[j],
        "n": len(y),
        "days": len(day_mae),
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "persistence_mae": base_mae,
        "skill": 1 - mae / base_mae,
        "daily_skill": daily_skill,
        "daily_skill_se": daily_skill_se,
        "p_better_than_persistence": point_test["p"],
        "direction_accuracy": float(np.mean(np.sign(p) == np.sign(y))),
        "share_unchanged": float(np.mean(y == 0)),
        "pinball_bps": 0.0,
        "daily_mae": day_mae.tolist(),
        "daily_persistence_mae": day_base.tolist(),
        "test_vs_persistence": {"mae": point_test},
    }
    n_eff = max(len(y) / h, 1.0)
    bands = {level: (p - f.half[level][:, j], p + f.half[level][:, j]) for level in LEVELS}
    daily_is = np.zeros(len(day_mae))
    for level, (lower, upper) in bands.items():
        half = f.half[level][:, j]
        inside = (np.abs(y - p) <= half).astype(float)
        pooled = float(inside.mean())
        day_cov, day_cov_se = mean_se(_per_day(inside, t.day))
        tau = (1 - level) / 2
        out["pinball_bps"] += BPS * float(np.mean(_pinball(y, lower, tau) + _pinball(y, upper, 1 - tau))) / 2
        key = f"{round(level * 100)}"
        winkler = BPS * scores.interval_score(y, lower, upper, level)
        day_is = _per_day(winkler, t.day)
        daily_is += day_is / len(bands)
        out |= {
            f"coverage_{key}": pooled,
            f"coverage_{key}_se": float(np.sqrt(pooled * (1 - pooled) / n_eff)),
            f"daily_coverage_{key}": day_cov,
            f"daily_coverage_{key}_se": day_cov_se,
            f"width_{key}_bps": BPS * float(np.mean(np.exp(upper) - np.exp(lower))),
            f"interval_score_{key}_bps": float(np.mean(winkler)),
            f"daily_interval_score_{key}": day_is.tolist(),
            f"backtest_{key}": scores.backtest(inside == 0, t.open_time, h, level).to_dict(),
            f"by_vol_decile_{key}": _grouped(inside, vol_decile, VOL_GROUPS, t.day),
            f"by_hour_{key}": _grouped(inside, t.hour, HOURS, t.day),
        }
    out["pinball_bps"] /= len(LEVELS)
    out["daily_interval_score"] = daily_is.tolist()  # mean over the levels: the gate's loss for bands
    out["wis_bps"] = BPS * float(np.mean(scores.weighted_interval_score(y, p, bands)))
    sigma = scores.gaussian_sigma(f.half[LEVELS[0]][:, j], LEVELS[0])
    out["crps_gaussian_bps"] = BPS * float(np.mean(scores.crps_gaussian(y, p, sigma)))
    out["pit_gaussian"] = scores.pit_histogram(scores.normal_cdf((y - p) / sigma))
    out["pit_bands"] = scores.band_pit(y, bands)
    return out


def _sample(t: Truth, f: ReturnForecast, origins: int, horizon: int) -> dict:
    """Prices of the newest ``origins`` forecasts at one horizon, with the realised close(t + h)."""
    j = HORIZONS.index(horizon)
    keep = slice(max(len(t.idx) - origins, 0), None)
    close, point = t.close[keep], f.point[keep, j]
    out = {"actual": (close * np.exp(t.y[keep, j])).tolist(), "point": (close * np.exp(point)).tolist()}
    for level in LEVELS:
        half = f.half[level][keep, j]
        key = round(level * 100)
        out |= {
            f"lower_{key}": (close * np.exp(point - half)).tolist(),
            f"upper_{key}": (close * np.exp(point + half)).tolist(),
        }
    return out


@overload
def json_safe(value: dict) -> dict: ...
@overload
def json_safe(value: object) -> object: ...
def json_safe(value: object) -> object:
    """NaN and infinity become null (JSON and JSONB have no such numbers)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def evaluate(
    candles: Candles,
    predictors: dict[str, Predictor],
    since_ms: int | None = None,
    period_ms: int = DAY_MS,
    on_scored: Callable[[str], None] | None = None,
) -> dict:
    """Scores of every named predictor on the same origins; ``persistence`` is the reference.

    ``on_scored(name)`` is called as each predictor's scores are done (a progress bar follows it).
    """
    if REFERENCE not in predictors:
        raise ValueError("the predictors must include the persistence reference")
    t = truth(candles, list(predictors.values()), since_ms, period_ms)
    if len(t.idx) == 0:
        raise ValueError("no complete evaluation windows in the data")
    report: dict = {
        "origins": len(t.idx),
        "first_origin_ms": int(t.open_time[0]),
        "last_origin_ms": int(t.open_time[-1]),
        "days": len(np.unique(t.day)),
        "test_level": TEST_LEVEL,
        "power": POWER,
        "models": {},
    }
    keep = slice(max(len(t.idx) - SAMPLE_ORIGINS, 0), None)
    report["sample"] = {
        "horizon": SAMPLE_HORIZON,
        "origin_ms": t.open_time[keep].tolist(),
        "models": {},
    }
    decile, edges = t.vol_decile()
    report["vol_decile_edges_bps"] = (BPS * edges).tolist()
    days, first = np.unique(t.day, return_index=True)
    report["day_start_ms"] = (days * period_ms).tolist()
    report["complete_days"] = t.complete[first].tolist()
    for name, predictor in predictors.items():
        f = predictor.forecast_returns(candles, t.idx)
        report["models"][name] = {str(h): _horizon_scores(t, f, j, h, decile) for j, h in enumerate(HORIZONS)}
        report["sample"]["models"][name] = _sample(t, f, SAMPLE_ORIGINS, SAMPLE_HORIZON)
        if on_scored:
            on_scored(name)
    reference = report["models"][REFERENCE]
    complete = np.asarray(report["complete_days"], dtype=bool)
    for per_horizon in report["models"].values():
        for h, s in per_horizon.items():
            s["pinball_vs_persistence"] = s["pinball_bps"] / reference[h]["pinball_bps"]
            s["test_vs_persistence"]["interval_score"] = _versus(
                np.asarray(reference[h]["daily_interval_score"]),
                np.asarray(s["daily_interval_score"]),
                complete,
            )
    return json_safe(report)
