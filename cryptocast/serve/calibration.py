"""The bands' quant scores as the API shows them: measured on the test window at training time, and
live on the served predictions of the recent window.

Both views have one shape per horizon, so a reader (the dashboard) compares them directly: the
weighted interval score, then per band (``"80"``, ``"95"``) the coverage against its nominal with a
standard error, the interval (Winkler) score and the mean width in basis points of the origin's
close, the Kupiec and Christoffersen p-values, and the coverage per UTC hour of the origin.

- **Training** (:func:`training_view`): read from what training stored (``metrics["test"]`` per
  horizon, :mod:`cryptocast.tune.evaluation`), with coverage per volatility decile and per hour and
  their day-block standard errors, and the gate's minimum detectable effect. Nothing is recomputed.
- **Live** (:func:`live_scores`): the served prediction of each origin in the pair's newest
  ``window_minutes`` whose target candle is stored, scored in log returns exactly as the evaluation
  scores them. The h-minute outcomes of consecutive minutes overlap, so a coverage's standard error
  counts ``n / h`` outcomes (that of a calibrated band: the nominal's binomial error), and Kupiec and
  Christoffersen see every h-th origin only (:func:`cryptocast.tune.scores.backtest`). One window
  is at most a week, so the query reads at most four rows per minute of it.
"""

from __future__ import annotations

import numpy as np

from cryptocast.serve.scoring import coverage_se
from cryptocast.sql.database import Database
from cryptocast.tune import scores
from cryptocast.tune.conformal import LEVELS
from cryptocast.tune.evaluation import BPS, HOUR_MS, HOURS, json_safe

MAX_WINDOW_MINUTES = 7 * 24 * 60
MIN_WINDOW_MINUTES = 60

_SERVED_SQL = """
WITH newest AS (SELECT max(open_time) AS t FROM price_history WHERE symbol_id = $1)
SELECT p.horizon, (extract(epoch FROM p.origin_time) * 1000)::bigint AS origin_ms, o.close AS origin_close,
       a.close AS actual, p.predicted, p.lower_80, p.upper_80, p.lower_95, p.upper_95
FROM predictions p
JOIN price_history a ON a.symbol_id = p.symbol_id AND a.open_time = p.origin_time + p.horizon * interval '1 minute'
JOIN price_history o ON o.symbol_id = p.symbol_id AND o.open_time = p.origin_time
WHERE p.symbol_id = $1 AND p.served AND p.lower_80 IS NOT NULL
  AND p.origin_time >= (SELECT t FROM newest) - $2 * interval '1 minute'
ORDER BY p.horizon, p.origin_time
"""


def band_key(level: float) -> str:
    return f"{round(level * 100)}"


def score_horizon(h: int, rows: dict[str, np.ndarray]) -> dict:
    """One horizon's live scores from its rows (origin_ms, origin_close, actual, predicted, bounds)."""
    close = rows["origin_close"]
    y, point = np.log(rows["actual"] / close), np.log(rows["predicted"] / close)
    hour = (rows["origin_ms"] // HOUR_MS) % HOURS
    per_hour = np.bincount(hour, minlength=HOURS)
    n = len(y)
    bands, out_bands = {}, {}
    for level in LEVELS:
        key = band_key(level)
        lower, upper = np.log(rows[f"lower_{key}"] / close), np.log(rows[f"upper_{key}"] / close)
        bands[level] = (lower, upper)
        inside = (rows[f"lower_{key}"] <= rows["actual"]) & (rows["actual"] <= rows[f"upper_{key}"])
        test = scores.backtest(~inside, rows["origin_ms"], h, level)
        hits = np.bincount(hour, weights=inside.astype(np.float64), minlength=HOURS)
        with np.errstate(invalid="ignore", divide="ignore"):
            by_hour = hits / per_hour
        coverage = float(inside.mean())
        out_bands[key] = {
            "nominal": level,
            "coverage": coverage,
            "coverage_se": coverage_se(level, n, h),
            "interval_score_bps": BPS * float(np.mean(scores.interval_score(y, lower, upper, level))),
            "width_bps": BPS * float(np.mean(np.exp(upper) - np.exp(lower))),
            "kupiec_p": test.kupiec_p,
            "christoffersen_p": test.christoffersen_p,
            "backtest": test.to_dict(),
            "by_hour": {
                "coverage": by_hour.tolist(),
                "se": [coverage_se(level, int(c), h) for c in per_hour],
                "n": per_hour.tolist(),
            },
        }
    return {
        "n": n,
        "n_effective": n / h,
        "wis_bps": BPS * float(np.mean(scores.weighted_interval_score(y, point, bands))),
        "bands": out_bands,
    }


async def live_scores(db: Database, symbol_id: int, window_minutes: int) -> dict:
    """Per horizon (a string key, as elsewhere in the API), the served bands' scores over the window."""
    async with db.raw() as conn:
        records = await conn.fetch(_SERVED_SQL, symbol_id, window_minutes)
    if not records:
        return {}
    columns = {name: np.array([r[i] for r in records]) for i, name in enumerate(records[0].keys())}
    out = {}
    for h in np.unique(columns["horizon"]):
        mine = columns["horizon"] == h
        rows = {k: v[mine].astype(np.int64 if k == "origin_ms" else np.float64) for k, v in columns.items()}
        out[str(int(h))] = score_horizon(int(h), rows)
    return json_safe(out)


def _grouped(stored: dict | None) -> dict | None:
    return {k: stored[k] for k in ("coverage", "se", "n")} if stored else None


def _p(stored: dict | None, key: str) -> float | None:
    return stored.get(key) if stored else None


def _horizon_training(s: dict, decision: dict | None) -> dict:
    bands = {}
    for level in LEVELS:
        key = band_key(level)
        backtest = s.get(f"backtest_{key}")
        bands[key] = {
            "nominal": level,
            "coverage": s.get(f"coverage_{key}"),
            "coverage_se": s.get(f"coverage_{key}_se"),
            "daily_coverage_se": s.get(f"daily_coverage_{key}_se"),
            "interval_score_bps": s.get(f"interval_score_{key}_bps"),
            "width_bps": s.get(f"width_{key}_bps"),
            "kupiec_p": _p(backtest, "kupiec_p"),
            "christoffersen_p": _p(backtest, "christoffersen_p"),
            "by_vol_decile": _grouped(s.get(f"by_vol_decile_{key}")),
            "by_hour": _grouped(s.get(f"by_hour_{key}")),
        }
    versus = s.get("test_vs_persistence") or {}
    return {
        "n": s.get("n"),
        "days": s.get("days"),
        "wis_bps": s.get("wis_bps"),
        "crps_gaussian_bps": s.get("crps_gaussian_bps"),
        "pit_bands": s.get("pit_bands"),
        "bands": bands,
        "mde_vs_persistence": {
            loss: (versus.get(loss) or {}).get("mde") for loss in ("mae", "interval_score")
        },
        "gate": None
        if decision is None
        else {
            k: decision.get(k)
            for k in ("promote", "days", "mde", "p_holm", "improvement", "bands_improvement")
        },
    }


def training_view(metrics: dict) -> dict:
    """Per horizon, the test-window scores a version was registered with ({} when none were stored)."""
    decisions = {str(d["horizon"]): d for d in metrics.get("gate") or []}
    tested = metrics.get("test") or {}
    return {
        h: _horizon_training(s, decisions.get(h))
        for h, s in sorted(tested.items(), key=lambda kv: int(kv[0]))
    }
