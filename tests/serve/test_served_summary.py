"""The served summary pools scored groups; a group that stored no interval does not count toward coverage."""

from __future__ import annotations

import pytest

from cryptocast.serve.scoring import HorizonScore, drift, served_summary


def _score(model_id: int, n: int, coverage: float | None, served: bool = True) -> HorizonScore:
    return HorizonScore(model_id, "lstm", model_id, served, 5, n, 2.0, 2.5, coverage, coverage)


def test_coverage_is_pooled_over_the_groups_that_stored_bands() -> None:
    summary = served_summary([_score(1, 300, 0.7), _score(2, 100, None), _score(3, 100, 0.9)])
    five = summary["5"]
    assert five["n"] == 500
    assert five["coverage_80"] == pytest.approx((0.7 * 300 + 0.9 * 100) / 400)
    assert five["skill"] == pytest.approx(1 - 2.0 / 2.5)


def test_a_horizon_without_any_interval_has_no_coverage_and_no_coverage_drift() -> None:
    summary = served_summary([_score(1, 5000, None), _score(2, 10, 0.1, served=False)])
    assert summary["5"]["coverage_80"] is None and summary["5"]["coverage_95"] is None
    assert drift(summary, min_samples=100) == []


def test_coverage_outside_its_band_is_drift() -> None:
    summary = served_summary([_score(1, 5000, 0.2)])
    assert any("interval covers 20.0%" in line for line in drift(summary, min_samples=100))
