"""Any frame becomes the same ordered, typed candles, whether it needed sorting or not; a file is read
strictly, and what the reader did to it is counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candlecheck import CandleFileError
from cryptocast.tune.candlefile import read_candle_file
from cryptocast.tune.candles import OHLCV, from_frame
from tests.tune.tune_data import DATA, btc


def _frame(times: list[int], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"open_time_ms": times, **dict.fromkeys(OHLCV, closes)})


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


# A file a user brings: every layout reads to the same candles; what the reader finds is counted, and
# what it cannot use is named by file, line and column.

KLINE_HEADER = (
    "Open time,Open,High,Low,Close,Volume,Close time,Quote asset volume,Number of trades,"
    "Taker buy base asset volume,Taker buy quote asset volume,Ignore"
)
PARTIAL_ROWS = 3  # Binance's export leaves the newest rows with only OHLCV, as in the real 12-field files


def _minutes(rows: int) -> pd.DataFrame:
    return btc(1.0).frame.iloc[:rows].reset_index(drop=True)


def _kline_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Binance's 12 fields, the derived ones computed as Binance defines them."""
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3
    return pd.DataFrame(
        {
            "open_time": frame["open_time_ms"],
            **{c: frame[c] for c in OHLCV},
            "close_time": frame["open_time_ms"] + MINUTE_MS - 1,
            "quote": frame["volume"] * typical,
            "trades": 100,
            "taker_base": frame["volume"] / 2,
            "taker_quote": frame["volume"] * typical / 2,
            "ignore": 0,
        }
    )


def _layouts(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    plain = folder / "BTCUSDT-plain.csv"
    frame.to_csv(plain, index=False)
    gz = folder / "BTCUSDT-gz.csv.gz"
    frame.to_csv(gz, index=False, compression="gzip")
    zipped = folder / "BTCUSDT-1m.zip"
    frame.to_csv(zipped, index=False, compression={"method": "zip", "archive_name": "BTCUSDT-1m.csv"})
    kline = _kline_rows(frame)
    headerless = folder / "BTCUSDT-1m-archive.csv"
    kline.to_csv(headerless, index=False, header=False)
    micro = folder / "BTCUSDT-1m-archive-us.csv"
    kline.assign(open_time=kline["open_time"] * 1000, close_time=kline["close_time"] * 1000 + 999).to_csv(
        micro, index=False, header=False
    )
    dated = folder / "BTCUSDT_1m.csv.gz"
    with_dates = kline.assign(
        open_time=pd.to_datetime(kline["open_time"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    with_dates = with_dates.astype(object)
    with_dates.iloc[-PARTIAL_ROWS:, 6:] = ""
    dated.write_bytes(
        gzip.compress((KLINE_HEADER + "\n" + with_dates.to_csv(index=False, header=False)).encode())
    )
    return {"plain": plain, "gz": gz, "zip": zipped, "headerless": headerless, "micro": micro, "dated": dated}


def test_every_layout_reads_to_the_same_candles(tmp_path: Path) -> None:
    frame = _minutes(90)
    for kind, path in _layouts(frame, tmp_path).items():
        read = read_candle_file(path)
        pd.testing.assert_frame_equal(
            read.candles.frame, frame.astype(dict.fromkeys(OHLCV, np.float64)), obj=kind
        )
        assert (
            read.report.minutes == len(frame) and read.report.merged_repeats == read.report.out_of_order == 0
        )
    bundled = read_candle_file(
        DATA / "BTCUSDT-2025-03.parquet"
    ).candles.frame  # exact decimals → the same doubles
    assert bundled.iloc[: len(frame)].reset_index(drop=True).equals(frame)
    assert "microseconds" in " ".join(read_candle_file(tmp_path / "BTCUSDT-1m-archive-us.csv").report.lines())


def test_repeats_are_merged_disorder_sorted_and_holes_kept_and_all_counted(tmp_path: Path) -> None:
    frame = _minutes(200)
    holes = [(50, 5), (120, 12)]  # (first missing row, minutes missing)
    kept = frame.drop([i for start, n in holes for i in range(start, start + n)])
    repeats = kept.iloc[[3, 70, 150]]
    written = pd.concat([kept, repeats]).sample(frac=1.0, random_state=7)
    path = tmp_path / "BTCUSDT-messy.csv"
    written.to_csv(path, index=False)
    read = read_candle_file(path)
    pd.testing.assert_frame_equal(
        read.candles.frame, kept.reset_index(drop=True).astype(dict.fromkeys(OHLCV, np.float64))
    )
    r = read.report
    descents = int((np.diff(written["open_time_ms"].to_numpy()) < 0).sum())
    assert (r.rows, r.minutes, r.merged_repeats, r.out_of_order) == (
        len(written),
        len(kept),
        len(repeats),
        descents,
    )
    assert (r.holes, r.missing_minutes) == (2, 17)
    assert r.largest_hole == (int(frame["open_time_ms"][120]), 12)
    text = "\n".join(r.lines())
    assert (
        f"{len(repeats)} rows repeated an earlier minute" in text and f"{descents} rows opened before" in text
    )
    assert "holes: 2, 17 minutes missing, the largest 12 minutes" in text


def _line_of(path: Path, message: str) -> str:
    """The text of the line the message names."""
    number = int(message.split(" line ")[1].split(":", maxsplit=1)[0])
    return path.read_text().splitlines()[number - 1]


def test_a_bad_cell_is_named_by_its_line_and_column(tmp_path: Path) -> None:
    lines = _minutes(30).to_csv(index=False).splitlines()
    lines.insert(5, "")  # a blank line: skipped, and the line numbers after it stay true
    lines[17] = lines[17].replace(lines[17].split(",")[4], "n/a")  # the close of line 18
    path = tmp_path / "BTCUSDT-bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CandleFileError) as caught:
        read_candle_file(path)
    message = str(caught.value)
    assert message.startswith("BTCUSDT-bad.csv line 18: close is not a number: 'n/a'")
    assert "n/a" in _line_of(path, message) and "\n" not in message


def test_a_repeat_that_differs_is_refused_and_both_lines_named(tmp_path: Path) -> None:
    frame = _minutes(20)
    changed = frame.iloc[[7]].assign(close=frame["close"][7] + 1)
    path = tmp_path / "BTCUSDT-conflict.csv"
    pd.concat([frame, changed]).to_csv(path, index=False)
    with pytest.raises(CandleFileError, match=r"is on line 9 and line 22 with different values"):
        read_candle_file(path)


def test_parquet_problems_are_named_by_row(tmp_path: Path) -> None:
    frame = _minutes(10).astype(dict.fromkeys(OHLCV, np.float64))
    frame.loc[4, "low"] = -1.0
    path = tmp_path / "BTCUSDT-bad.parquet"
    frame.to_parquet(path)
    with pytest.raises(
        CandleFileError, match=r"^BTCUSDT-bad.parquet row 5: low is -1; prices must be positive$"
    ):
        read_candle_file(path)
    frame.drop(columns="volume").to_parquet(path)
    with pytest.raises(CandleFileError, match=r"no column volume"):
        read_candle_file(path)
