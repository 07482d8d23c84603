"""A candle file that a user brings to ``cryptocast evaluate``: its layout read, its cells parsed.

A user's file can hold anything: another layout, another interval, repeated or shuffled rows, a hole
of hours. So the reading is strict: a cell that is not what its column needs ends the reading in one
:class:`~cryptocast.tune.candlecheck.CandleFileError` line that names the file, the row (its line, in
a CSV) and the column, and the candles are then checked and described by
:mod:`cryptocast.tune.candlecheck`, which says what it did instead of quietly mending the data.

Three layouts are read: the project's ``open_time_ms,open,high,low,close,volume`` (CSV, gzipped or
zipped CSV, or the bundled Parquet with exact decimal columns), and Binance's 12-field kline, either
with its ``Open time,Open,High,…`` header (open time in ms or as a UTC date) or headerless as in
Binance's archives (open time in ms, or in µs as its spot archives write them since 2025). Every
number is the double nearest to its text, whatever the layout.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cryptocast.tune.candlecheck import CandleFileError, FileReport, Where, checked, first_hit, utc_minute
from cryptocast.tune.candles import OHLCV, Candles, from_frame

TIME_COLUMN = "open_time_ms"
KLINE_FIELDS = (
    "open_time",
    *OHLCV,
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
    "ignore",
)
KLINE_TIME = KLINE_FIELDS[0]
PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
EARLIEST_MS = 1_230_940_800_000  # 2009-01-03, the first bitcoin block: no candle is older
LATEST_MS = 4_102_444_800_000  # 2100-01-01
MICROS_PER_MS = 1_000
VALUE_CHARS = 40  # a bad cell is quoted up to this length
REASON_CHARS = 120  # a parser's complaint (it names the line) up to this length


@dataclass(frozen=True, slots=True)
class CandleFile:
    """A file's checked candles and the report of what was found in it."""

    candles: Candles
    report: FileReport

    @property
    def name(self) -> str:
        return self.report.name


@dataclass(frozen=True, slots=True)
class _Text:
    """Every cell as text, the file's columns named in the project's terms, and how to name a row."""

    columns: dict[str, pd.Series]
    layout: str
    where: Where


def read_candle_file(path: Path) -> CandleFile:
    """The file's 1-minute candles, sorted and with identical repeats merged, and the report."""
    path = Path(path)
    text = _text(path)
    name = path.name
    rows = len(text.columns[TIME_COLUMN])
    if rows == 0:
        raise CandleFileError(f"{name}: no rows of candles")
    times, notes = _open_times(text, name)
    values = {c: _numbers(text.columns[c], c, text.where, name) for c in OHLCV}
    times, values, report = checked(times, values, text.where, name, text.layout, notes)
    return CandleFile(from_frame(pd.DataFrame({TIME_COLUMN: times, **values})), report)


def _one_line(value: object, limit: int = VALUE_CHARS) -> str:
    """``value`` as text on one line, cut to ``limit``: an error stays one line, however odd the file."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _text(path: Path) -> _Text:
    """The file's cells as text, whatever its container; a file that is none of them is refused."""
    name = path.name
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(ZIP_MAGIC))
    except FileNotFoundError:
        raise CandleFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CandleFileError(f"{path}: is a directory, not a candle file") from None
    except OSError as exc:
        raise CandleFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not magic:
        raise CandleFileError(f"{name}: the file is empty")
    if magic.startswith(PARQUET_MAGIC):
        return _parquet_text(path)
    compression: Literal["gzip", "zip"] | None = (
        "gzip" if magic.startswith(GZIP_MAGIC) else "zip" if magic.startswith(ZIP_MAGIC) else None
    )
    return _csv_text(path, compression)


def _parquet_text(path: Path) -> _Text:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise CandleFileError(
            f"{path.name}: not a readable Parquet file ({_one_line(exc, REASON_CHARS)})"
        ) from None
    missing = [c for c in (TIME_COLUMN, *OHLCV) if c not in table.column_names]
    if missing:
        raise CandleFileError(
            f"{path.name}: no column {', '.join(missing)} (has {_one_line(', '.join(table.column_names), REASON_CHARS)}); "
            f"a candle file needs {','.join((TIME_COLUMN, *OHLCV))}"
        )
    columns = {c: _parquet_cells(table[c], c, path.name) for c in (TIME_COLUMN, *OHLCV)}
    return _Text(columns, "Parquet", lambda i: f"row {i + 1}")


def _parquet_cells(column: pa.ChunkedArray, name: str, file: str) -> pd.Series:
    """A column's cells as text: decimals exactly as written, so they parse to the CSV's doubles."""
    try:
        text = pc.cast(column, pa.string())
    except pa.ArrowException:
        raise CandleFileError(f"{file}: column {name} holds {column.type}, not numbers") from None
    return pd.Series(text.to_pylist(), dtype=object).fillna("")


def _csv_text(path: Path, compression: Literal["gzip", "zip"] | None) -> _Text:
    name = path.name
    container = {"gzip": "gzipped CSV", "zip": "zipped CSV", None: "CSV"}[compression]

    def read(**options: Any) -> pd.DataFrame:  # more pandas.read_csv options
        try:
            frame = pd.read_csv(
                path,
                compression=compression,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                **options,
            )
        except pd.errors.EmptyDataError:
            raise CandleFileError(f"{name}: the {container} holds no rows") from None
        except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
            raise CandleFileError(
                f"{name}: not a readable {container} file ({_one_line(exc, REASON_CHARS)})"
            ) from None
        return frame.fillna("")  # a short row's missing fields read as empty cells

    first = read(header=None, nrows=1).iloc[0, 0]
    header = pd.to_numeric(pd.Series([first]), errors="coerce").isna().iloc[0]
    frame = read(header=0 if header else None)
    frame = frame[~frame.apply(lambda col: col.str.strip() == "").all(axis=1)]  # blank lines
    first_line = 2 if header else 1

    def where(i: int) -> str:
        return f"line {int(frame.index[i]) + first_line}"

    if not header:
        if frame.shape[1] < len(KLINE_FIELDS[:6]):
            raise CandleFileError(
                f"{name}: a headerless file must be Binance's kline layout (open time, open, high, low, close, "
                f"volume, …), but its rows have {frame.shape[1]} fields"
            )
        columns = dict(zip(KLINE_FIELDS, (frame[c] for c in frame.columns), strict=False))
        columns[TIME_COLUMN] = columns.pop(KLINE_TIME)
        return _Text(columns, f"{container}, headerless, Binance kline order", where)
    named = {_normal(c): frame[c] for c in frame.columns}
    layout = f"{container}, Binance kline" if KLINE_TIME in named and TIME_COLUMN not in named else container
    if layout != container:
        named[TIME_COLUMN] = named.pop(KLINE_TIME)
    missing = [c for c in (TIME_COLUMN, *OHLCV) if c not in named]
    if missing:
        found = ", ".join(str(c) for c in frame.columns)
        raise CandleFileError(
            f"{name}: no column {', '.join(missing)} (has {_one_line(found, REASON_CHARS)}); a candle file needs "
            f"{','.join((TIME_COLUMN, *OHLCV))} or Binance's kline columns (Open time,Open,High,Low,Close,Volume,…)"
        )
    return _Text(named, layout, where)


def _normal(column: str) -> str:
    """``Open time`` → ``open_time``: header names compared without case or spacing."""
    return "_".join(str(column).strip().lower().replace("_", " ").split())


def _numbers(text: pd.Series, column: str, where: Where, name: str) -> np.ndarray:
    """The column as the doubles nearest its text; an empty or non-numeric cell is refused."""
    cells = text.astype(str).str.strip()
    empty = (cells == "").to_numpy()
    if empty.any():
        i, more = first_hit(empty)
        raise CandleFileError(f"{name} {where(i)}: {column} is empty{more}")
    parsed = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(parsed)
    if bad.any():
        i, more = first_hit(bad)
        raise CandleFileError(
            f"{name} {where(i)}: {column} is not a number: {_one_line(cells.iloc[i])!r}{more}"
        )
    return cells.to_numpy(dtype=object).astype(np.float64)


def _open_times(text: _Text, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Open times in integer ms; a kline's UTC dates and Binance's microseconds are converted, said so."""
    cells = text.columns[TIME_COLUMN].astype(str).str.strip()
    kline = "kline" in text.layout
    if kline and pd.to_numeric(cells.iloc[:1], errors="coerce").isna().all():
        dates = pd.to_datetime(cells, utc=True, errors="coerce", format="ISO8601")
        bad = dates.isna().to_numpy()
        if bad.any():
            i, more = first_hit(bad)
            raise CandleFileError(
                f"{name} {text.where(i)}: open time is not a date: {_one_line(cells.iloc[i])!r}{more}"
            )
        ms = (dates - pd.Timestamp(0, tz=UTC)) // pd.Timedelta(milliseconds=1)
        return ms.to_numpy(np.int64), ("open times: UTC dates, read as milliseconds",)
    values = _numbers(cells, "open time" if kline else TIME_COLUMN, text.where, name)
    notes: tuple[str, ...] = ()
    if kline and np.median(values) >= LATEST_MS:
        values = values / MICROS_PER_MS
        notes = ("open times: microseconds (Binance's archives since 2025), read as milliseconds",)
    whole = values == np.round(values)
    if not whole.all():
        i, more = first_hit(~whole)
        raise CandleFileError(
            f"{name} {text.where(i)}: open time {values[i]!r} is not a whole number of ms{more}"
        )
    outside = (values < EARLIEST_MS) | (values >= LATEST_MS)
    if outside.any():
        i, more = first_hit(outside)
        raise CandleFileError(
            f"{name} {text.where(i)}: open time {values[i]:.0f} is not a time in milliseconds since 1970 (between "
            f"{utc_minute(EARLIEST_MS)[:10]} and {utc_minute(LATEST_MS)[:10]}){more}"
        )
    return values.astype(np.int64), notes
