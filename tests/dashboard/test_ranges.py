"""The shown range: typed times are read and bounded, a stored view from the browser is checked again,
following live slides a window of fixed length, and a picked range is the chart's x-axis.

Why: both the typed times and the stored view come from the browser; a reversed, endless or
malformed range must read as a sentence and never reach the API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cryptocast.dashboard import figures, ranges

LAST = datetime(2025, 3, 8, 12, 0, tzinfo=UTC)


def test_typed_times_are_utc_minutes_and_offsets_are_converted() -> None:
    view = ranges.picked("2025-03-08 10:00", "2025-03-08T13:30:45+02:00")
    assert (view.start, view.end) == (
        datetime(2025, 3, 8, 10, tzinfo=UTC),
        datetime(2025, 3, 8, 11, 30, tzinfo=UTC),
    )
    assert not view.follow and view.minutes == 90
    assert view.window(LAST) == (view.start, view.end)  # a picked range stays put


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("2025-03-08 12:00", "2025-03-08 11:00", "is not after the start"),
        ("2025-03-08 12:00", "2025-03-08 12:00", "is not after the start"),
        ("2025-03-01 00:00", "2025-03-08 00:01", "at most 7 days"),
        ("1999-01-01 00:00", "1999-01-02 00:00", "is outside 2009-2200"),
        ("yesterday", "2025-03-08 11:00", "'yesterday' is not a time"),
        ("", "2025-03-08 11:00", "Type the start"),
        (None, "2025-03-08 11:00", "Type the start"),
        ("2025-03-08 10:00", "2025-03-08 11:00; DROP TABLE x" * 5, "is not a time"),
    ],
)
def test_a_bad_range_is_refused_with_a_sentence(start: object, end: object, said: str) -> None:
    with pytest.raises(ranges.RangeProblem, match=said) as refused:
        ranges.picked(start, end)
    assert len(str(refused.value)) < 2 * ranges.MAX_TEXT + 80  # typed text is shown cut


def test_following_live_keeps_the_length_and_ends_at_the_newest_candle() -> None:
    view = ranges.live(60)
    start, end = view.window(LAST)
    assert end - start == timedelta(minutes=60) and end == LAST + timedelta(minutes=1)
    later = LAST + timedelta(minutes=7)
    assert view.window(later) == (start + timedelta(minutes=7), end + timedelta(minutes=7))
    assert view.key() == "live 60" != ranges.live(360).key()


def test_a_stored_view_is_checked_again() -> None:
    default = ranges.live(360)
    picked = ranges.picked("2025-03-08 10:00", "2025-03-08 11:00")
    assert ranges.from_store(ranges.to_store(picked), default) == picked
    assert ranges.from_store(ranges.to_store(ranges.live(60)), default) == ranges.live(60)
    tampered = [
        None,
        "live",
        {"follow": True, "minutes": 10**9},
        {"follow": True, "minutes": True},
        {"follow": True, "minutes": "60"},
        {"follow": False, "start": "2025-03-01T00:00:00+00:00", "end": "2025-04-01T00:00:00+00:00"},
        {"follow": False, "start": "2025-03-08T11:00:00+00:00", "end": "2025-03-08T10:00:00+00:00"},
        {"follow": False, "start": "2025-03-08T10:00:00", "end": "2025-03-08T11:00:00"},
        {"follow": False, "start": "x" * 1000, "end": "2025-03-08T11:00:00+00:00"},
    ]
    for value in tampered:
        assert ranges.from_store(value, default) == default, value


def test_a_picked_range_is_the_charts_x_range_and_following_live_fits_the_data() -> None:
    candles = {"candles": [["2025-03-08T10:00:00+00:00", 100, 101, 99, 100.5, 1, 1, 1, "live"]]}
    picked = ranges.picked("2025-03-08 10:00", "2025-03-08 11:00")
    fig = figures.price_figure("BTCUSDT", picked.key(), candles, [], None, (picked.start, picked.end))
    assert list(fig.layout.xaxis.range) == ["2025-03-08 10:00:00", "2025-03-08 11:00:00"]
    assert fig.layout.uirevision == f"BTCUSDT/{picked.key()}"
    followed = figures.price_figure("BTCUSDT", "live 60", candles, [], None)
    assert followed.layout.xaxis.range is None
