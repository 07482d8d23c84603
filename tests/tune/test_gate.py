"""The promotion gate on simulated retrains: no-skill challengers are rarely promoted, real skill is found.

A retrain is simulated as per-day losses over the gate's window for the champion (persistence, as
served today) and a challenger that equals it plus noise: the day's loss level follows a persistent
volatility regime (log-AR(1), 0.6 a day), the challenger's noise is AR(1) across days (0.3 a day,
above the 0.0–0.3 measured on real months) and correlated 0.3 across the four horizons. A no-skill
challenger's noise has mean zero; a skilled one is better by a stated share at one horizon.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cryptocast.tune.dataset import HORIZONS
from cryptocast.tune.gate import ALPHA, decide, recheck
from cryptocast.tune.stats import (
    cosine_dof,
    holm,
    minimum_detectable,
    paired_test,
    student_t_cdf,
    student_t_ppf,
)

RETRAINS = 1000
WINDOW_DAYS = 28  # the window the gate's power is stated for
OLD_WINDOW_DAYS = 7
REGIME_PERSISTENCE, REGIME_SD = 0.6, 0.3
NOISE_PERSISTENCE, NOISE_SD, HORIZON_CORRELATION = 0.3, 0.02, 0.3
LEVELS = np.array([1.0, 2.2, 3.9, 5.5])  # MAE grows about as sqrt(h)
POWER_HORIZON = 2  # the skilled challenger is better at h = 15 only
Z95 = 1.959963984540054


def retrains(n: int, days: int, effect: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, days, horizons) per-day losses of challengers and their champions."""
    rng = np.random.default_rng(seed)
    h = len(HORIZONS)
    mix = np.linalg.cholesky(np.full((h, h), HORIZON_CORRELATION) + (1 - HORIZON_CORRELATION) * np.eye(h))
    shocks = rng.normal(size=(n, days, h)) @ mix.T
    regime = rng.normal(0, REGIME_SD / math.sqrt(1 - REGIME_PERSISTENCE**2), size=n)
    noise = shocks[:, 0]
    level, error = np.empty((n, days)), np.empty((n, days, h))
    for t in range(days):
        regime = REGIME_PERSISTENCE * regime + REGIME_SD * rng.normal(size=n)
        if t:
            noise = NOISE_PERSISTENCE * noise + math.sqrt(1 - NOISE_PERSISTENCE**2) * shocks[:, t]
        level[:, t], error[:, t] = np.exp(regime), noise
    champion = level[:, :, None] * LEVELS
    return champion * (1 - effect + NOISE_SD * error), champion


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of a binomial proportion."""
    p, z2 = successes / n, Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    return centre - half, centre + half


def sign_flip_p(d: np.ndarray) -> float:
    """The previous gate's test: exact one-sided sign-flip p-value of mean(d) > 0 over independent days."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    return float(np.mean(signs @ d >= d.sum() - 1e-12))


def promoted_anywhere(challengers: np.ndarray, champions: np.ndarray) -> np.ndarray:
    return np.array(
        [any(d.promote for d in decide(c, k, k)) for c, k in zip(challengers, champions, strict=True)]
    )


def test_no_skill_challengers_are_promoted_at_most_five_percent_of_retrains() -> None:
    challengers, champions = retrains(RETRAINS, WINDOW_DAYS, np.zeros(len(HORIZONS)), seed=5)
    false = int(promoted_anywhere(challengers, champions).sum())
    low, high = wilson(false, RETRAINS)
    assert false / RETRAINS <= ALPHA, (false, low, high)
    assert high < 0.065  # the simulation is precise enough to tell 5 % from the old gate's rate


def test_the_previous_gate_fails_the_same_simulation() -> None:
    """Four unadjusted sign-flip tests at 5 % over a 7-day window, on the same kind of challengers."""
    challengers, champions = retrains(RETRAINS, OLD_WINDOW_DAYS, np.zeros(len(HORIZONS)), seed=6)
    gains = champions - challengers
    false = sum(any(sign_flip_p(g[:, j]) < ALPHA for j in range(len(HORIZONS))) for g in gains)
    low, _ = wilson(false, RETRAINS)
    assert low > ALPHA, false  # the old gate promotes no-skill challengers well above 5 % of the time


def test_a_challenger_with_the_stated_skill_is_promoted_with_the_stated_power() -> None:
    """Skill equal to the minimum detectable effect, from the window's true spread, is found ≈ 80 % of the time."""
    challengers, champions = retrains(4 * RETRAINS, WINDOW_DAYS, np.zeros(len(HORIZONS)), seed=11)
    relative_means = (champions - challengers)[:, :, POWER_HORIZON].mean(axis=1) / champions[
        :, :, POWER_HORIZON
    ].mean(axis=1)
    true_se = float(relative_means.std())
    effect = minimum_detectable(true_se, cosine_dof(WINDOW_DAYS), ALPHA / len(HORIZONS))
    skill = np.zeros(len(HORIZONS))
    skill[POWER_HORIZON] = effect
    challengers, champions = retrains(RETRAINS, WINDOW_DAYS, skill, seed=12)
    found = [decide(c, k, k)[POWER_HORIZON] for c, k in zip(challengers, champions, strict=True)]
    hits = sum(d.promote for d in found)
    low, high = wilson(hits, RETRAINS)
    assert low <= 0.80 + 0.02 and high >= 0.80 - 0.05, (effect, hits)
    reported = float(np.median([d.mde for d in found]))
    assert abs(reported - effect) / effect < 0.25  # the MDE written into decisions estimates the true one
    assert "MDE" in found[0].reason and f"{WINDOW_DAYS} complete days" in found[0].reason


def test_holm_rejects_step_down_and_adjusts_monotonically() -> None:
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.5], 0.05)
    assert rejected == [True, False, False, False]
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.001, 0.002, 0.003, 0.004], 0.05)[0] == [True] * 4


@pytest.mark.parametrize(
    ("t", "df", "expected"),
    [
        (1.0, 1, 0.75),
        (2.0, 2, 0.9082482904638631),
        (2.015048372669157, 5, 0.95),
        (-1.8124611228107335, 10, 0.05),
        (2.0518305164802833, 27, 0.975),
    ],
)
def test_student_t_matches_tabulated_quantiles(t: float, df: int, expected: float) -> None:
    assert student_t_cdf(t, df) == pytest.approx(expected, abs=1e-9)
    assert student_t_ppf(expected, df) == pytest.approx(t, abs=1e-7)


def test_a_window_shorter_than_the_minimum_promotes_nothing() -> None:
    rng = np.random.default_rng(0)
    champion = rng.uniform(10, 20, size=(4, len(HORIZONS)))
    decisions = decide(champion * 0.5, champion, champion)  # overwhelming skill, but 4 days
    assert not any(d.promote for d in decisions) and "only 4 complete days" in decisions[0].reason
    assert paired_test(np.array([1.0]), 0.05).p == 1.0


def test_a_challenger_whose_bands_are_worse_is_held_back() -> None:
    rng = np.random.default_rng(1)
    champion = rng.uniform(10, 20, size=(WINDOW_DAYS, len(HORIZONS)))
    bands = rng.uniform(50, 60, size=(WINDOW_DAYS, len(HORIZONS)))
    better_point = champion * 0.9
    assert all(d.promote for d in decide(better_point, champion, champion, bands=(bands * 0.99, bands)))
    held = decide(better_point, champion, champion, bands=(bands * 1.05, bands))
    assert not any(d.promote for d in held) and "bands are worse" in held[0].reason
    assert held[0].bands_improvement == pytest.approx(-0.05)


def test_every_decision_records_its_evidence() -> None:
    challengers, champions = retrains(1, WINDOW_DAYS, np.zeros(len(HORIZONS)), seed=3)
    for d in decide(challengers[0], champions[0], champions[0]):
        record = d.to_dict()
        assert {"horizon", "promote", "p_vs_champion", "p_vs_persistence", "reason"} <= set(record)
        assert record["days"] == WINDOW_DAYS and record["p_holm"] >= record["p_vs_champion"]
        assert 0 < record["mde"] < 0.1 and record["power"] == 0.8
    kept = recheck(champions[0] * 0.8, champions[0], served=[5, 30])
    assert [d.horizon for d in kept] == [5, 30] and all(d.promote and d.mde > 0 for d in kept)
