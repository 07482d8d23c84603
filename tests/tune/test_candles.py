"""Any frame becomes the same ordered, typed candles, whether it needed sorting or not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptocast.tune.candles import OHLCV, from_frame


def _frame(times: list[int], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"open_time_ms": times, **{c: closes for c in OHLCV}})


def test_out_of_order_and_repeated_minutes_are_sorted_and_the_last_copy_kept() -> None:
    candles = from_frame(_frame([180_000, 60_000, 120_000, 60_000], [3, 1, 2, 9]))
    assert candles.open_time.tolist() == [60_000, 120_000, 180_000]
    assert candles.frame["close"].tolist() == [9.0, 2.0, 3.0]
    assert candles.frame.index.tolist() == [0, 1, 2]


def test_an_ordered_frame_comes_out_equal_with_the_right_types() -> None:
    given = _frame([60_000, 120_000, 180_000], [1, 2, 3])  # integers, as a caller might send
    candles = from_frame(given.iloc[1:])  # a slice: its index does not start at 0
    assert candles.frame["open_time_ms"].dtype == np.int64
    assert all(candles.frame[c].dtype == np.float64 for c in OHLCV)
    assert candles.frame.index.tolist() == [0, 1] and candles.frame["close"].tolist() == [2.0, 3.0]
