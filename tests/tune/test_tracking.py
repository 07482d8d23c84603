"""The online level correction holds coverage where a fixed level drifts, and never looks ahead."""

from __future__ import annotations

import numpy as np

from cryptocast.tune.tracking import track

MINUTES = 40_000
LEVEL = 0.8
LAG = 30  # the outcome of row r is known at row r + LAG, as a 30-minute target
STEP = 0.001


def _scores(seed: int = 0) -> np.ndarray:
    """log(|outcome| / band) for a band fitted once: the true spread drifts by a factor of two over
    the run (a calming month), so the fixed band over-covers more and more."""
    rng = np.random.default_rng(seed)
    drift = np.linspace(0.0, -np.log(2), MINUTES)
    quantile = 1.2816  # the 80 % band of a unit normal
    return np.log(np.abs(rng.normal(size=MINUTES)) * np.exp(drift) / quantile)[:, None]


def test_the_correction_holds_coverage_where_a_fixed_band_drifts_away_by_its_exact_bound() -> None:
    scores = _scores()
    fixed = (scores <= 0).mean()
    used, settled = track(scores, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1), settle=True)
    corrected = (scores <= used).mean()
    assert fixed > LEVEL + 0.08  # the fixed band over-covers by more than eight points
    # every outcome moved x by STEP·(miss − 0.2): the coverage error is the total move over STEP·T
    assert np.isclose(LEVEL - corrected, settled[0] / (STEP * MINUTES))
    assert abs(corrected - LEVEL) < (fixed - LEVEL) / 5
    assert settled[0] < -0.4  # the band shrank with the spread (log 2 = 0.69 over the run)
    quarters = [(scores[part] <= used[part]).mean() for part in np.array_split(np.arange(MINUTES), 4)]
    assert all(abs(q - LEVEL) < 0.03 for q in quarters), quarters  # in every quarter, not only on average


def test_a_row_uses_only_outcomes_known_by_then_and_missing_ones_change_nothing() -> None:
    scores = _scores(1)
    used, _ = track(scores, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1))
    r = MINUTES // 2
    later = scores.copy()
    later[r - LAG + 1 :] = np.random.default_rng(2).normal(size=(MINUTES - r + LAG - 1, 1))
    changed, _ = track(later, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1))
    np.testing.assert_array_equal(
        changed[: r + 1], used[: r + 1]
    )  # outcomes of rows after r − LAG unseen at r
    assert not np.array_equal(changed[r + 1 :], used[r + 1 :])
    holes = scores.copy()
    holes[::7] = np.nan  # no band or no outcome there
    with_holes, settled = track(holes, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1), settle=True)
    seen = ~np.isnan(holes[:, 0])
    covered = (holes[seen, 0] <= with_holes[seen, 0]).mean()
    assert np.isclose(LEVEL - covered, settled[0] / (STEP * seen.sum()))  # only the outcomes seen count


def test_settling_counts_the_outcomes_still_pending_at_the_last_row() -> None:
    scores = _scores(3)[:1000]
    used, end = track(scores, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1))
    _, settled = track(scores, np.array([LAG]), np.array([1 - LEVEL]), STEP, np.zeros(1), settle=True)
    pending = scores[-LAG:, 0] > used[-LAG:, 0]
    assert np.isclose(settled[0] - end[0], STEP * (pending.sum() - (1 - LEVEL) * LAG))
