"""Spans fitted to the history a pair has, and the minimum below which no training runs."""

from __future__ import annotations

import pytest

from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.history import HistoryNeeds, NotEnoughHistory

HOUR_MS = 3_600_000


def test_full_history_gets_the_preferred_spans_and_training_the_rest() -> None:
    assert HistoryNeeds().fit_spans(60 * DAY_MS) == SplitSpans(
        val_ms=2 * DAY_MS, calib_ms=2 * DAY_MS, test_ms=28 * DAY_MS
    )


@pytest.mark.parametrize(
    ("history_days", "test", "calib", "val"),
    [
        (10, 5, 1, 1),
        (11, 6, 1, 1),
        (20, 15, 1, 1),
        (33, 28, 1, 1),
        (34, 28, 2, 1),
        (34.5, 28, 2, 1.5),
        (35, 28, 2, 2),
    ],
)
def test_short_history_shrinks_validation_first_and_the_test_window_last(
    history_days: float, test: float, calib: float, val: float
) -> None:
    spans = HistoryNeeds().fit_spans(int(history_days * DAY_MS))
    assert (spans.test_ms, spans.calib_ms, spans.val_ms) == (
        int(test * DAY_MS),
        int(calib * DAY_MS),
        int(val * DAY_MS),
    )
    train_ms = int(history_days * DAY_MS) - spans.test_ms - spans.calib_ms - spans.val_ms
    assert train_ms >= 3 * DAY_MS  # training always keeps its minimum


def test_below_the_minimum_it_says_how_many_more_days() -> None:
    needs = HistoryNeeds()
    assert needs.min_history_ms == 10 * DAY_MS
    with pytest.raises(
        NotEnoughHistory, match=r"needs 2\.5 more days of history \(has 7\.5, .* at least 10\.0\)"
    ):
        needs.fit_spans(int(7.5 * DAY_MS))
    assert needs.missing_ms(int(7.5 * DAY_MS)) == int(2.5 * DAY_MS) and needs.missing_ms(11 * DAY_MS) == 0


def test_fixed_spans_never_shrink() -> None:
    spans = SplitSpans(val_ms=3 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=12 * HOUR_MS)
    needs = HistoryNeeds.fixed(spans, min_train_ms=6 * HOUR_MS)
    assert needs.fit_spans(2 * DAY_MS) == spans and needs.min_history_ms == 24 * HOUR_MS
    with pytest.raises(NotEnoughHistory):
        needs.fit_spans(23 * HOUR_MS)
