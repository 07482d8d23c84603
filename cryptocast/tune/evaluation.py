"""Walk-forward scores of forecasts against persistence of close(t), per horizon and per day.

Point errors are in price units, ``close(t)·(exp(y) − exp(ŷ))``; interval widths and pinball losses
in basis points of close(t), so pairs of any price level compare. Every average also comes per day
with a standard error, and skill comes with a one-sided p-value on the per-day MAE differences, so
a 0.3 % difference can be told from noise. Coverage has two standard errors: across days, and the
pooled binomial one with an effective sample of minutes / h (overlapping h-minute targets are not
independent). The newest forecasts at one horizon are kept as a sample, for the report's plot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import LEVELS
from cryptocast.tune.dataset import DAY_MS, HORIZONS, day_of, targets
from cryptocast.tune.features import compute
from cryptocast.tune.predictor import Predictor, ReturnForecast
from cryptocast.tune.stats import mean_se, one_sided_p

BPS = 1e4
REFERENCE = "persistence"
SAMPLE_ORIGINS = 240  # the newest four hours of forecasts, kept in the report for the plot
SAMPLE_HORIZON = 15


@dataclass(frozen=True, slots=True)
class Truth:
    """Evaluation origins (grid indices) with their realised log returns, close and day."""

    idx: np.ndarray
    y: np.ndarray
    close: np.ndarray
    open_time: np.ndarray
    day: np.ndarray


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
    return Truth(idx, y[idx], ff.close[idx], ff.open_time[idx], day_of(ff.open_time[idx], period_ms))


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


def _horizon_scores(t: Truth, f: ReturnForecast, j: int, h: int) -> dict:
    y, p = t.y[:, j], f.point[:, j]
    err = t.close * (np.exp(y) - np.exp(p))
    base = t.close * (np.exp(y) - 1.0)
    mae, base_mae = float(np.mean(np.abs(err))), float(np.mean(np.abs(base)))
    day_mae, day_base = _per_day(np.abs(err), t.day), _per_day(np.abs(base), t.day)
    daily_skill, daily_skill_se = mean_se(1 - day_mae / day_base)
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
        "p_better_than_persistence": one_sided_p(day_base - day_mae),
        "direction_accuracy": float(np.mean(np.sign(p) == np.sign(y))),
        "share_unchanged": float(np.mean(y == 0)),
        "pinball_bps": 0.0,
        "daily_mae": day_mae.tolist(),
        "daily_persistence_mae": day_base.tolist(),
    }
    n_eff = max(len(y) / h, 1.0)
    for level in LEVELS:
        half = f.half[level][:, j]
        inside = (np.abs(y - p) <= half).astype(float)
        pooled = float(inside.mean())
        day_cov, day_cov_se = mean_se(_per_day(inside, t.day))
        tau = (1 - level) / 2
        out["pinball_bps"] += (
            BPS * float(np.mean(_pinball(y, p - half, tau) + _pinball(y, p + half, 1 - tau))) / 2
        )
        key = f"{round(level * 100)}"
        out |= {
            f"coverage_{key}": pooled,
            f"coverage_{key}_se": float(np.sqrt(pooled * (1 - pooled) / n_eff)),
            f"daily_coverage_{key}": day_cov,
            f"daily_coverage_{key}_se": day_cov_se,
            f"width_{key}_bps": BPS * float(np.mean(np.exp(p + half) - np.exp(p - half))),
        }
    out["pinball_bps"] /= len(LEVELS)
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
        out |= {f"lower_{key}": (close * np.exp(point - half)).tolist(), f"upper_{key}": (close * np.exp(point + half)).tolist()}
    return out


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
) -> dict:
    """Scores of every named predictor on the same origins; ``persistence`` is the reference."""
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
        "models": {},
    }
    keep = slice(max(len(t.idx) - SAMPLE_ORIGINS, 0), None)
    report["sample"] = {
        "horizon": SAMPLE_HORIZON,
        "origin_ms": t.open_time[keep].tolist(),
        "models": {},
    }
    for name, predictor in predictors.items():
        f = predictor.forecast_returns(candles, t.idx)
        report["models"][name] = {str(h): _horizon_scores(t, f, j, h) for j, h in enumerate(HORIZONS)}
        report["sample"]["models"][name] = _sample(t, f, SAMPLE_ORIGINS, SAMPLE_HORIZON)
    reference = report["models"][REFERENCE]
    for scores in report["models"].values():
        for h, s in scores.items():
            s["pinball_vs_persistence"] = s["pinball_bps"] / reference[h]["pinball_bps"]
    return json_safe(report)
