"""Proper scores and calibration tests for interval forecasts, as forecasters and risk desks use them.

Coverage alone rewards a band that is always wide; the **interval (Winkler) score** charges the
width plus 2/α times every miss, so it is lowest for the narrowest band that still covers. The
**weighted interval score** (Bracher et al. 2021) combines the point (as the median) and every band
into one proper score that approximates the CRPS. The conformal forecast is a point and two bands,
not a distribution: its own CRPS does not exist. Where a number in CRPS units is wanted, it is
computed under a stated *location-scale assumption* (Gaussian, σ matched to the 80 % band), and so
is a PIT histogram; the assumption-free PIT is the share of outcomes below, between and above the
nested bands.

Misses of overlapping h-minute targets come in runs by construction, so the **Kupiec** (right miss
rate) and **Christoffersen** (misses not clustered) likelihood-ratio tests use every h-th minute
only. Coverage by group (volatility decile, hour of day) has a **day-block** standard error: days
are the clusters, so a volatile afternoon counts as one observation, not as 300.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from cryptocast.records import MINUTE_MS

PIT_BINS = 10
_erfc = np.frompyfunc(math.erfc, 1, 1)


def interval_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """Winkler's score of the central ``level`` interval: width + 2/α · distance outside, α = 1 − level."""
    alpha = 1 - level
    return (upper - lower) + 2 / alpha * (np.maximum(lower - y, 0) + np.maximum(y - upper, 0))


def weighted_interval_score(
    y: np.ndarray, median: np.ndarray, bands: dict[float, tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """WIS = (½|y − m| + Σ_k α_k/2 · IS_{α_k}) / (K + ½) over the K central bands given by level."""
    total = 0.5 * np.abs(y - median)
    for level, (lower, upper) in bands.items():
        total = total + (1 - level) / 2 * interval_score(y, lower, upper, level)
    return total / (len(bands) + 0.5)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_erfc(-np.asarray(z, dtype=np.float64) / math.sqrt(2)), dtype=np.float64)


def gaussian_sigma(half_width: np.ndarray, level: float) -> np.ndarray:
    """σ of the Gaussian whose central ``level`` interval has this half-width (the stated assumption)."""
    return half_width / NormalDist().inv_cdf(0.5 + level / 2)


def crps_gaussian(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """CRPS of N(mu, sigma²) at y, in closed form (Gneiting and Raftery 2007)."""
    z = (y - mu) / sigma
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * normal_cdf(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def pit_histogram(pit: np.ndarray, bins: int = PIT_BINS) -> list[float]:
    """Share of PIT values in each of ``bins`` equal bins of [0, 1] (flat when calibrated)."""
    counts, _ = np.histogram(np.clip(pit, 0, 1), bins=bins, range=(0, 1))
    return (counts / max(len(pit), 1)).tolist()


def band_pit(y: np.ndarray, bands: dict[float, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Shares of outcomes between consecutive bounds of nested bands: an interval forecast's PIT histogram.

    For levels 80 and 95 the bins are ``below_95``, ``low_95_80``, ``inside_80``, ``high_80_95`` and
    ``above_95``, with nominal shares 2.5, 7.5, 80, 7.5 and 2.5 %.
    """
    levels = sorted(bands, reverse=True)  # outermost first
    keys = [f"{round(level * 100)}" for level in levels]
    above_lower = sum((y >= bands[level][0]).astype(int) for level in levels)
    above_upper = sum((y > bands[level][1]).astype(int) for level in levels)
    bin_of = np.asarray(above_lower + above_upper)
    labels = [f"below_{keys[0]}"] + [f"low_{a}_{b}" for a, b in itertools.pairwise(keys)]
    labels += [f"inside_{keys[-1]}"] + [f"high_{b}_{a}" for a, b in reversed(list(itertools.pairwise(keys)))]
    labels += [f"above_{keys[0]}"]
    shares = np.bincount(bin_of, minlength=len(labels)) / max(len(y), 1)
    return {label: float(share) for label, share in zip(labels, shares, strict=True)}


def chi2_1_sf(statistic: float) -> float:
    """P(χ²₁ ≥ statistic)."""
    return math.erfc(math.sqrt(max(statistic, 0.0) / 2))


def _log_likelihood(misses: float, total: float, rate: float) -> float:
    """log of rate^misses (1 − rate)^(total − misses), with 0·log 0 = 0."""
    out = 0.0
    if misses > 0:
        out += misses * math.log(rate)
    if total - misses > 0:
        out += (total - misses) * math.log(1 - rate)
    return out


@dataclass(frozen=True, slots=True)
class BacktestTests:
    """Kupiec's proportion-of-failures and Christoffersen's independence tests on one band."""

    n: int  # non-overlapping forecasts (every h-th minute)
    misses: int
    miss_rate: float
    kupiec_lr: float
    kupiec_p: float
    transitions: int  # consecutive pairs exactly h minutes apart
    christoffersen_lr: float
    christoffersen_p: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


def backtest(miss: np.ndarray, open_time: np.ndarray, horizon: int, level: float) -> BacktestTests:
    """Both tests on the misses of origins at minutes divisible by ``horizon`` (non-overlapping targets)."""
    minute = open_time // MINUTE_MS
    keep = minute % horizon == 0
    hits, when = miss[keep].astype(bool), minute[keep]
    n, x = len(hits), int(hits.sum())
    expected = 1 - level
    if n == 0:
        nan = float("nan")
        return BacktestTests(0, 0, nan, nan, 1.0, 0, nan, 1.0)
    lr_uc = -2 * (_log_likelihood(x, n, expected) - _log_likelihood(x, n, x / n))
    chained = np.diff(when) == horizon  # pairs with no gap between them
    prev, cur = hits[:-1][chained], hits[1:][chained]
    n01, n11 = int(np.sum(~prev & cur)), int(np.sum(prev & cur))
    n0, n1 = int(np.sum(~prev)), int(np.sum(prev))
    pooled = (n01 + n11) / max(n0 + n1, 1)
    if 0 < pooled < 1:
        lr_ind = -2 * (
            _log_likelihood(n01 + n11, n0 + n1, pooled)
            - _log_likelihood(n01, n0, n01 / n0 if n0 else 0.0)
            - _log_likelihood(n11, n1, n11 / n1 if n1 else 0.0)
        )
    else:  # no miss (or only misses) among the pairs: nothing to cluster
        lr_ind = 0.0
    return BacktestTests(n, x, x / n, lr_uc, chi2_1_sf(lr_uc), n0 + n1, lr_ind, chi2_1_sf(lr_ind))


def grouped_coverage(
    inside: np.ndarray, group: np.ndarray, groups: int, day: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: pooled coverage, its day-block (cluster-robust) standard error, and the count.

    The coverage of group g is a ratio Σ_d hits_gd / Σ_d n_gd over days d; its standard error treats
    each day's (hits, n) as one draw: sqrt(D/(D−1) Σ_d (hits_gd − cov_g n_gd)²) / Σ_d n_gd.
    """
    _, day_index = np.unique(day, return_inverse=True)
    days = int(day_index.max()) + 1 if len(day_index) else 0
    cell = group * days + day_index
    n = np.bincount(cell, minlength=groups * days).reshape(groups, days).astype(np.float64)
    hits = np.bincount(cell, weights=inside.astype(np.float64), minlength=groups * days).reshape(groups, days)
    total = n.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = hits.sum(axis=1) / total
        spread = ((hits - cov[:, None] * n) ** 2).sum(axis=1)
        used = (n > 0).sum(axis=1)
        se = np.sqrt(used / np.maximum(used - 1, 1) * spread) / total
    se[used < 2] = np.nan
    return cov, se, total


def ratio_gain(model: np.ndarray, reference: np.ndarray, cluster: np.ndarray) -> tuple[float, float]:
    """1 − Σmodel/Σreference (a pooled relative gain in a loss) and its day-block standard error.

    The delta method on the ratio of sums, with ``cluster`` (a day per minute) as the blocks: a
    volatile day moves both sums together and counts once, not once per minute.
    """
    _, c = np.unique(cluster, return_inverse=True)
    a, b = np.bincount(c, model), np.bincount(c, reference)
    ratio = a.sum() / b.sum()
    k = len(a)
    se = np.sqrt(k / (k - 1) * np.sum((a - ratio * b) ** 2)) / b.sum() if k > 1 else float("nan")
    return float(1 - ratio), float(se)
