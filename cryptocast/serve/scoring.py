"""Realised errors of stored predictions: rolling skill vs persistence and interval coverage.

A prediction is scored once the candle at its target time is stored. Persistence's error for the
same origin and horizon is |close(origin) − close(target)|, so skill is measured on exactly the
minutes the model was scored on.

Drift, which queues a retrain (:func:`drift`), is either of:

- **skill**: the served forecast's rolling skill vs persistence is below 0 at a horizon;
- **coverage**: the rolling coverage of an interval leaves ``nominal ± COVERAGE_BAND_SE`` binomial
  standard errors. The errors are counted on an effective sample of ``n / h`` outcomes, because
  the h-minute outcomes of consecutive minutes overlap (one independent outcome per h minutes); on
  a day's window that is about ±3.2 points at h = 1 and ±17 points at h = 30 for the 80 % interval.

Both need ``min_samples`` scored predictions at the horizon before they count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cryptocast.sql.database import Database

_SCORES_SQL = """
WITH newest AS (SELECT max(open_time) AS t FROM price_history WHERE symbol_id = $1)
SELECT p.model_id, m.kind, m.version, p.served, p.horizon, count(*) AS n,
       avg(abs(p.predicted - a.close)) AS mae,
       avg(abs(o.close - a.close)) AS mae_persistence,
       avg((a.close BETWEEN p.lower_80 AND p.upper_80)::int)::float8 AS coverage_80,
       avg((a.close BETWEEN p.lower_95 AND p.upper_95)::int)::float8 AS coverage_95
FROM predictions p
JOIN models m ON m.id = p.model_id
JOIN price_history a ON a.symbol_id = p.symbol_id AND a.open_time = p.origin_time + p.horizon * interval '1 minute'
JOIN price_history o ON o.symbol_id = p.symbol_id AND o.open_time = p.origin_time
WHERE p.symbol_id = $1 AND p.origin_time >= (SELECT t FROM newest) - $2 * interval '1 minute'
GROUP BY p.model_id, m.kind, m.version, p.served, p.horizon
ORDER BY p.served DESC, p.model_id, p.horizon
"""


@dataclass(frozen=True, slots=True)
class HorizonScore:
    model_id: int
    kind: str
    version: int
    served: bool
    horizon: int
    n: int
    mae: float
    mae_persistence: float
    coverage_80: float | None  # None: no prediction in the group stored that interval
    coverage_95: float | None

    @property
    def skill(self) -> float:
        """1 − MAE/MAE(persistence); 0 when persistence made no error (nothing to beat)."""
        return 1.0 - self.mae / self.mae_persistence if self.mae_persistence > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "kind": self.kind,
            "version": self.version,
            "served": self.served,
            "horizon": self.horizon,
            "n": self.n,
            "mae": self.mae,
            "mae_persistence": self.mae_persistence,
            "skill": self.skill,
            "coverage_80": self.coverage_80,
            "coverage_95": self.coverage_95,
        }


async def scores(db: Database, symbol_id: int, window_minutes: int) -> list[HorizonScore]:
    """Scores per model and horizon over the pair's newest ``window_minutes`` of origins."""
    async with db.raw() as conn:
        rows = await conn.fetch(_SCORES_SQL, symbol_id, window_minutes)
    columns: list[dict[str, Any]] = [
        {k: (float(v) if isinstance(v, float) else v) for k, v in dict(r).items()} for r in rows
    ]
    return [HorizonScore(**c) for c in columns]


def served_summary(found: list[HorizonScore]) -> dict:
    """Per horizon, the served forecast's skill and coverage (the pair's live accuracy)."""
    merged: dict[int, list[HorizonScore]] = {}
    for s in found:
        if s.served:
            merged.setdefault(s.horizon, []).append(s)
    out = {}
    for horizon, parts in sorted(merged.items()):
        n = sum(p.n for p in parts)
        mae = sum(p.mae * p.n for p in parts) / n
        base = sum(p.mae_persistence * p.n for p in parts) / n
        out[str(horizon)] = {
            "n": n,
            "mae": mae,
            "mae_persistence": base,
            "skill": 1.0 - mae / base if base > 0 else 0.0,
            "coverage_80": _pooled([(p.coverage_80, p.n) for p in parts]),
            "coverage_95": _pooled([(p.coverage_95, p.n) for p in parts]),
        }
    return out


def _pooled(parts: list[tuple[float | None, int]]) -> float | None:
    """The coverage of the groups that stored the interval, weighted by their sizes; None if none did."""
    known = [(value, n) for value, n in parts if value is not None]
    total = sum(n for _, n in known)
    return sum(value * n for value, n in known) / total if total else None


COVERAGE_BAND_SE = 3.0
NOMINAL = {"coverage_80": 0.80, "coverage_95": 0.95}


def below_persistence(summary: dict, min_samples: int) -> list[int]:
    """Horizons whose served skill is negative over enough scored predictions."""
    return [int(h) for h, s in summary.items() if s["n"] >= min_samples and s["skill"] < 0]


def coverage_se(nominal: float, n: int, horizon: int) -> float:
    """The binomial standard error of a calibrated interval's coverage over n scored h-minute outcomes,
    counted as n/h independent ones."""
    return math.sqrt(nominal * (1 - nominal) / max(1.0, n / horizon))


def coverage_band(nominal: float, n: int, horizon: int) -> tuple[float, float]:
    """The rolling coverage a calibrated interval stays within: nominal ± 3 standard errors of n/h outcomes."""
    se = coverage_se(nominal, n, horizon)
    return nominal - COVERAGE_BAND_SE * se, nominal + COVERAGE_BAND_SE * se


def drift(summary: dict, min_samples: int) -> list[str]:
    """Why the served forecasts have drifted (empty: they have not): one sentence per finding."""
    found = [
        f"h={h}: live skill {summary[str(h)]['skill']:+.3f} is below persistence"
        for h in below_persistence(summary, min_samples)
    ]
    for h, s in summary.items():
        if s["n"] < min_samples:
            continue
        for key, nominal in NOMINAL.items():
            low, high = coverage_band(nominal, int(s["n"]), int(h))
            if s[key] is not None and not low <= s[key] <= high:  # None: no interval was stored
                found.append(
                    f"h={h}: {nominal:.0%} interval covers {s[key]:.1%}, outside {low:.1%}-{high:.1%}"
                )
    return found
