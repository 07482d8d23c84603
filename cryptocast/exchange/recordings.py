"""Recorded 1-minute candles: loading, packing and the facts inferred from them.

A recording is one file per pair in the column layout ``open_time_ms,open,high,low,close,volume``
(CSV, gzipped CSV or Parquet). The pair is the file name up to the first ``-`` or ``_``
(``BTCUSDT-2025-03.csv.gz`` → ``BTCUSDT``). The bundled recordings are Parquet files with exact
decimal columns, packed from the CSV originals by :func:`pack`.
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cryptocast.records import MINUTE_MS

COLUMNS = ("open_time_ms", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
SUFFIXES = (".parquet", ".csv", ".csv.gz")
BUNDLED_DIR = Path(__file__).parent / "data"
QUOTES_SAMPLE = BUNDLED_DIR / "quotes" / "BTCUSDT-quotes-2021-01-08.parquet"
# Binance prints prices and quantities with 8 decimals; no step is finer than that.
FINEST_STEP_DECIMALS = 8
PARQUET_LEVEL = 19
# Quote assets, longest first, to split a symbol into base and quote the way Binance names pairs.
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "DAI")
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")


class RecordingError(ValueError):
    """A recording file is unusable; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One pair's minutes as numpy arrays, sorted by open time, holes left as holes."""

    symbol: str
    source: str
    open_time: np.ndarray  # int64 ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tick_size: float
    step_size: float

    @property
    def first_open(self) -> int:
        return int(self.open_time[0])

    @property
    def end(self) -> int:
        """Close boundary of the last recorded minute (ms)."""
        return int(self.open_time[-1]) + MINUTE_MS

    def __len__(self) -> int:
        return len(self.open_time)


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, quote) of a Binance-style symbol; quote is the longest known suffix."""
    for quote in QUOTE_ASSETS:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3], symbol[-3:]


def symbol_of(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    symbol = re.split(r"[-_]", name, maxsplit=1)[0].upper()
    if not SYMBOL_RE.match(symbol):
        raise RecordingError(f"{path}: file name does not start with a pair name like BTCUSDT-…")
    return symbol


def infer_step(values: np.ndarray) -> float:
    """Largest power-of-ten step (down to 1e-8) that every value is a whole multiple of."""
    finite = values[np.isfinite(values) & (values != 0)]
    for decimals in range(FINEST_STEP_DECIMALS + 1):
        scaled = finite * 10.0**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-6 + 1e-9 * np.abs(scaled)):
            return 10.0**-decimals
    return 10.0**-FINEST_STEP_DECIMALS


def _float_column(column: pa.ChunkedArray) -> np.ndarray:
    """Floats equal to parsing the decimal text: unscaled integer / 10**scale rounds correctly."""
    if not pa.types.is_decimal(column.type):
        return pc.cast(column, pa.float64()).to_numpy()
    column = column.combine_chunks()
    words = np.frombuffer(column.buffers()[1], dtype=np.int64)
    unscaled = words[2 * column.offset : 2 * (column.offset + len(column)) : 2]
    return unscaled.astype(np.float64) / 10.0**column.type.scale


def _read_table(path: Path) -> pd.DataFrame:
    if path.name.endswith(".parquet"):
        table = pq.read_table(path)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise RecordingError(f"{path}: missing columns {missing}")
        data = {c: _float_column(table[c]) for c in (*PRICE_COLUMNS, "volume")}
        data["open_time_ms"] = pc.cast(table["open_time_ms"], pa.int64()).to_numpy()
        return pd.DataFrame(data)
    frame = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RecordingError(f"{path}: missing columns {missing}")
    return frame


def load_recording(path: Path) -> Recording:
    frame = _read_table(path).sort_values("open_time_ms").drop_duplicates("open_time_ms", keep="last")
    if frame.empty:
        raise RecordingError(f"{path}: no rows")
    open_time = frame["open_time_ms"].to_numpy(dtype=np.int64)
    if np.any(open_time % MINUTE_MS):
        raise RecordingError(f"{path}: open times must be whole minutes (1-minute candles)")
    arrays = {c: frame[c].to_numpy(dtype=np.float64) for c in (*PRICE_COLUMNS, "volume")}
    if not np.all(np.isfinite(np.stack(list(arrays.values())))):
        raise RecordingError(f"{path}: prices and volumes must all be numbers")
    prices = np.concatenate([arrays[c] for c in PRICE_COLUMNS])
    return Recording(
        symbol=symbol_of(path),
        source=path.name,
        open_time=open_time,
        tick_size=infer_step(prices),
        step_size=infer_step(arrays["volume"]),
        **arrays,
    )


def recording_files(directory: Path) -> list[Path]:
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and p.name.endswith(SUFFIXES)]
    if not files:
        raise RecordingError(f"{directory}: no recordings (*.parquet, *.csv, *.csv.gz)")
    return files


def load_recordings(directory: Path | None = None, pairs: list[str] | None = None) -> list[Recording]:
    """Every recording in ``directory`` (default: the bundled ones), optionally only ``pairs``."""
    directory = directory or BUNDLED_DIR
    wanted = {p.upper() for p in pairs} if pairs else None
    recordings: dict[str, Recording] = {}
    for path in recording_files(directory):
        if wanted is not None and symbol_of(path) not in wanted:
            continue
        recording = load_recording(path)
        if recording.symbol in recordings:
            raise RecordingError(f"{directory}: two recordings for {recording.symbol}")
        recordings[recording.symbol] = recording
    if wanted is not None and (unknown := wanted - recordings.keys()):
        raise RecordingError(f"{directory}: no recording for {sorted(unknown)}")
    return list(recordings.values())


def _decimals(value: decimal.Decimal) -> int:
    """Digits after the point (negative for trailing zeros) of a finite decimal."""
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int):  # 'n', 'N' or 'F': NaN or infinity
        raise TypeError(f"not a finite number: {value}")
    return -exponent


def _decimal_column(texts: pd.Series) -> pa.Array:
    values = [decimal.Decimal(t) for t in texts]
    scale = max(0, max(_decimals(v) for v in values))
    scale = min(scale, FINEST_STEP_DECIMALS)
    return pa.array([round(v, scale) for v in values], type=pa.decimal128(18, scale))


def pack(source: Path, target: Path) -> Path:
    """Write one CSV recording as compact Parquet: exact decimals, delta-encoded, zstd."""
    frame = pd.read_csv(source, dtype=str)
    columns = {"open_time_ms": pa.array(frame["open_time_ms"].astype("int64"))}
    for column in (*PRICE_COLUMNS, "volume"):
        columns[column] = _decimal_column(frame[column])
    out = target / f"{source.name.split('.')[0]}.parquet"
    pq.write_table(
        pa.table(columns),
        out,
        compression="zstd",
        compression_level=PARQUET_LEVEL,
        use_dictionary=False,
        store_decimal_as_integer=True,
        column_encoding=dict.fromkeys(columns, "DELTA_BINARY_PACKED"),
    )
    return out


def load_quotes(path: Path = QUOTES_SAMPLE) -> pd.DataFrame:
    """The recorded best bid/ask sample (``timestamp_ms,symbol,bid,bid_size,ask,ask_size``)."""
    if path.name.endswith(".parquet"):
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path)
