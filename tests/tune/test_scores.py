"""Interval scores, PIT, Kupiec/Christoffersen tests and grouped coverage: on known distributions and real candles."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from cryptocast.records import MINUTE_MS
from cryptocast.tune import scores
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.evaluation import VOL_GROUPS, evaluate
from cryptocast.tune.training import persistence_predictor
from cryptocast.tune.walkforward import DailyRecalibrated
from tests.tune.tune_data import btc

N = 200_000
LEVELS = (0.8, 0.95)


def _gaussian_bands(n: int, sigma: float = 1.0, levels: tuple[float, ...] = LEVELS) -> dict:
    out = {}
    for level in levels:
        z = NormalDist().inv_cdf(0.5 + level / 2) * sigma
        out[level] = (np.full(n, -z), np.full(n, z))
    return out


def test_the_interval_score_is_lowest_at_the_true_quantiles() -> None:
    y = np.random.default_rng(0).normal(size=N)
    for level in LEVELS:
        z = NormalDist().inv_cdf(0.5 + level / 2)
        by_width = {
            k: scores.interval_score(y, -k * z + 0 * y, k * z + 0 * y, level).mean() for k in (0.8, 1.0, 1.25)
        }
        assert by_width[1.0] < by_width[0.8] and by_width[1.0] < by_width[1.25]


def test_the_weighted_interval_score_approaches_the_crps_with_many_bands() -> None:
    """Bracher et al.: with many equally spaced levels, WIS tends to the CRPS (here the Gaussian's, 1/√π)."""
    y = np.random.default_rng(1).normal(size=N)
    levels = tuple(np.round(np.arange(0.05, 1.0, 0.05), 2))
    wis = scores.weighted_interval_score(y, np.zeros(N), _gaussian_bands(N, 1.0, levels)).mean()
    crps = scores.crps_gaussian(y, np.zeros(N), np.ones(N)).mean()
    assert crps == pytest.approx(1 / math.sqrt(math.pi), rel=0.01)
    assert wis == pytest.approx(crps, rel=0.03)


def test_pit_of_a_calibrated_forecast_is_flat_and_a_narrow_one_is_u_shaped() -> None:
    y = np.random.default_rng(2).normal(size=N)
    shares = scores.band_pit(y, _gaussian_bands(N))
    assert list(shares) == ["below_95", "low_95_80", "inside_80", "high_80_95", "above_95"]
    assert np.allclose(list(shares.values()), [0.025, 0.075, 0.8, 0.075, 0.025], atol=0.005)
    flat = scores.pit_histogram(scores.normal_cdf(y))
    assert np.allclose(flat, 0.1, atol=0.005)
    narrow = scores.pit_histogram(scores.normal_cdf(y / 0.8))
    assert narrow[0] > 0.12 and narrow[-1] > 0.12 and narrow[5] < 0.09


def test_kupiec_rejects_a_wrong_miss_rate_and_christoffersen_clustered_misses() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    minute = np.arange(n) * MINUTE_MS
    calibrated = scores.backtest(rng.random(n) < 0.2, minute, 1, 0.8)
    assert calibrated.kupiec_p > 0.01 and calibrated.christoffersen_p > 0.01
    assert scores.backtest(rng.random(n) < 0.23, minute, 1, 0.8).kupiec_p < 1e-4
    clustered = np.repeat(rng.random(n // 10) < 0.2, 10)  # right rate, misses in runs of ten minutes
    assert scores.backtest(clustered, minute, 1, 0.8).christoffersen_p < 1e-6
    # runs of h minutes are what overlapping h-minute targets produce; every h-th minute is independent
    assert scores.backtest(clustered, minute, 10, 0.8).christoffersen_p > 0.01


def test_christoffersen_counts_no_transition_across_a_gap() -> None:
    minute = np.r_[np.arange(100), np.arange(200, 300)] * MINUTE_MS
    result = scores.backtest(np.zeros(200, dtype=bool), minute, 1, 0.8)
    assert result.transitions == 198 and result.n == 200


def test_day_block_errors_grow_when_misses_come_in_days() -> None:
    rng = np.random.default_rng(4)
    days, per_day = 60, 1440
    day = np.repeat(np.arange(days), per_day)
    group = rng.integers(0, 4, size=days * per_day)
    iid = rng.random(days * per_day) < 0.8
    cov, se, n = scores.grouped_coverage(iid, group, 4, day)
    binomial = np.sqrt(cov * (1 - cov) / n)
    assert np.allclose(se, binomial, rtol=0.35) and n.sum() == days * per_day
    low, high = 0.7, 0.9
    shifted = rng.random(days * per_day) < np.repeat(
        rng.uniform(low, high, days), per_day
    )  # a coverage per day
    _, se_days, _ = scores.grouped_coverage(shifted, group, 4, day)
    expected = np.sqrt((high - low) ** 2 / 12 / days + binomial**2)  # the day-to-day spread dominates
    assert np.allclose(se_days, expected, rtol=0.35) and np.all(se_days > 2 * binomial)


@pytest.fixture(scope="module")
def report() -> dict:
    candles = btc(5.5)
    baseline, _ = persistence_predictor(candles.until(int(candles.open_time[0]) + 2 * DAY_MS), 2 * DAY_MS)
    return evaluate(candles, {"persistence": DailyRecalibrated(baseline, 2 * DAY_MS)})


def test_the_report_scores_complete_days_only_in_its_tests(report: dict) -> None:
    complete = report["complete_days"]
    assert len(complete) == report["days"] and complete[-1] is False and any(complete)
    point = report["models"]["persistence"]["15"]["test_vs_persistence"]["mae"]
    assert point["days"] == sum(complete)
    assert report["test_level"] == pytest.approx(0.05 / len(HORIZONS))


def test_grouped_coverage_in_the_report_adds_up_to_the_pooled_coverage(report: dict) -> None:
    for s in report["models"]["persistence"].values():
        for key in ("80", "95"):
            for groups in (s[f"by_hour_{key}"], s[f"by_vol_decile_{key}"]):
                n = np.array(groups["n"])
                cov = np.nan_to_num(np.array(groups["coverage"], dtype=float))
                assert n.sum() == s["n"]
                assert float(cov @ n / n.sum()) == pytest.approx(s[f"coverage_{key}"], abs=1e-12)
        deciles = np.array(s["by_vol_decile_80"]["n"])
        assert len(deciles) == VOL_GROUPS and deciles.min() > 0.09 * s["n"]
        assert sum(s["pit_bands"].values()) == pytest.approx(1.0)
        assert s["interval_score_95_bps"] > s["wis_bps"] > 0 and s["crps_gaussian_bps"] > 0


def test_ratio_gain_is_the_pooled_relative_gain_with_days_as_blocks() -> None:
    day = np.repeat(np.arange(4), 3)
    reference = np.ones(12)
    model = np.where(day % 2 == 0, 0.8, 1.0)  # 20 % better on half the days
    gain, se = scores.ratio_gain(model, reference, day)
    assert gain == pytest.approx(0.1)
    per_day = np.array([0.2, 0.0, 0.2, 0.0])  # each day's own gain; the blocks' spread sets the SE
    assert se == pytest.approx(np.sqrt(4 / 3 * np.sum((per_day - 0.1) ** 2 * 9)) / 12)
    assert np.isnan(scores.ratio_gain(model[:3], reference[:3], day[:3])[1])  # one day: no spread to measure
