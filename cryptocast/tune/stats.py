"""A one-sided paired test on per-day errors without SciPy: the sign-flip (randomisation) test.

Under the null hypothesis that the challenger is no better, each day's error difference is as
likely to have either sign; the p-value is the share of sign patterns whose mean difference is at
least the observed one. Exact for up to ``EXACT_MAX_DAYS`` days, Monte Carlo (seeded) beyond.
"""

from __future__ import annotations

import itertools

import numpy as np

EXACT_MAX_DAYS = 16
MONTE_CARLO_ROUNDS = 20_000
SEED = 0


def one_sided_p(improvement: np.ndarray) -> float:
    """p-value that the mean of ``improvement`` (baseline error − challenger error, per day) is > 0."""
    d = np.asarray(improvement, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return 1.0
    observed = d.mean()
    if len(d) <= EXACT_MAX_DAYS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(signs @ d / len(d) >= observed - 1e-15))
    rng = np.random.default_rng(SEED)
    signs = rng.choice((1.0, -1.0), size=(MONTE_CARLO_ROUNDS, len(d)))
    return float((1 + np.sum(signs @ d / len(d) >= observed - 1e-15)) / (MONTE_CARLO_ROUNDS + 1))


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error across periods (NaN SE for a single period)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se
