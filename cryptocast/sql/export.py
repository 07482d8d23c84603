"""A pair's stored rows over [start, end) as a CSV or Parquet file, streamed in bounded chunks.

Why: candles, top of book and predictions with their outcomes leave the system as files people open
in their own tools, and a month of minutes must not be held in memory to make one. Each chunk is one
keyset page (a short query on a pooled connection, given back between pages, so a slow reader holds
no transaction open) and becomes one block of CSV lines or one Parquet row group, sent before the
next page is read: memory stays at one chunk whatever the span. The HTTP API and ``cryptocast
export`` both write through here, so a file is the same whichever way it was asked for.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cryptocast.sql.database import Database

MAX_SPAN = timedelta(days=31)  # 44,640 minutes of a pair: the most one export covers
CHUNK_ROWS = 10_000  # rows per page read, per CSV block and per Parquet row group
FORMATS = ("csv", "parquet")
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
ONE_MICROSECOND = timedelta(microseconds=1)  # timestamptz's resolution: the next page starts just after

Row = Any  # an asyncpg Record: its values by column name


class ExportRefused(ValueError):
    """An export out of bounds (a reversed or too long span, an unknown format); the message says which."""


@dataclass(frozen=True, slots=True)
class Dataset:
    """What one export reads: its query, one page at a time, and its columns with their Arrow types.

    ``sql`` takes $1 the symbol id, $2 the end (exclusive), $3 the rows of a page, then the page's
    key (``first`` for the first page, ``after`` the last row of the previous one) and, where
    ``shadow`` is set, whether shadow models' predictions are included.
    """

    name: str
    sql: str
    columns: tuple[tuple[str, pa.DataType], ...]
    first: Callable[[datetime], tuple]
    after: Callable[[Row], tuple]
    shadow: bool = False

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.columns))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


TIME = pa.timestamp("us", tz="UTC")
F64 = pa.float64()

CANDLES = Dataset(
    "candles",
    """
SELECT open_time, open, high, low, close, volume, quote_volume, trades, taker_buy_base, taker_buy_quote,
       provenance
FROM price_history WHERE symbol_id = $1 AND open_time >= $4 AND open_time < $2
ORDER BY open_time LIMIT $3
""",
    (
        ("open_time", TIME),
        ("open", F64),
        ("high", F64),
        ("low", F64),
        ("close", F64),
        ("volume", F64),
        ("quote_volume", F64),
        ("trades", pa.int64()),
        ("taker_buy_base", F64),
        ("taker_buy_quote", F64),
        ("provenance", pa.string()),
    ),
    first=lambda start: (start,),
    after=lambda row: (row["open_time"] + ONE_MICROSECOND,),
)

TOP_OF_BOOK = Dataset(
    "top-of-book",
    """
SELECT minute, bid_price, bid_qty, ask_price, ask_qty, derived
FROM top_of_book WHERE symbol_id = $1 AND minute >= $4 AND minute < $2
ORDER BY minute LIMIT $3
""",
    (
        ("minute", TIME),
        ("bid_price", F64),
        ("bid_qty", F64),
        ("ask_price", F64),
        ("ask_qty", F64),
        ("derived", pa.bool_()),
    ),
    first=lambda start: (start,),
    after=lambda row: (row["minute"] + ONE_MICROSECOND,),
)

# Each prediction with its outcome: the close stored at its target minute (empty until that candle
# is stored), the error, and whether each band held it (empty without the close or the band), as
# the live scores (serve/scoring.py) count them. A page resumes after (origin, model, horizon), the
# predictions' own key; model ids and horizons are positive, so (start, 0, 0) precedes every row.
PREDICTIONS = Dataset(
    "predictions",
    """
SELECT p.origin_time, p.horizon, p.origin_time + p.horizon * interval '1 minute' AS target_time,
       p.model_id, m.kind AS model_kind, m.version AS model_version, p.served, p.late, p.made_at,
       p.predicted, p.lower_80, p.upper_80, p.lower_95, p.upper_95,
       a.close AS actual, a.close - p.predicted AS error,
       a.close BETWEEN p.lower_80 AND p.upper_80 AS within_80,
       a.close BETWEEN p.lower_95 AND p.upper_95 AS within_95
FROM predictions p
JOIN models m ON m.id = p.model_id
LEFT JOIN price_history a ON a.symbol_id = p.symbol_id
     AND a.open_time = p.origin_time + p.horizon * interval '1 minute'
WHERE p.symbol_id = $1 AND p.origin_time >= $4 AND p.origin_time < $2
  AND (p.origin_time, p.model_id, p.horizon) > ($4, $5, $6) AND ($7 OR p.served)
ORDER BY p.origin_time, p.model_id, p.horizon LIMIT $3
""",
    (
        ("origin_time", TIME),
        ("horizon", pa.int32()),
        ("target_time", TIME),
        ("model_id", pa.int32()),
        ("model_kind", pa.string()),
        ("model_version", pa.int32()),
        ("served", pa.bool_()),
        ("late", pa.bool_()),
        ("made_at", TIME),
        ("predicted", F64),
        ("lower_80", F64),
        ("upper_80", F64),
        ("lower_95", F64),
        ("upper_95", F64),
        ("actual", F64),
        ("error", F64),
        ("within_80", pa.bool_()),
        ("within_95", pa.bool_()),
    ),
    first=lambda start: (start, 0, 0),
    after=lambda row: (row["origin_time"], row["model_id"], row["horizon"]),
    shadow=True,
)

DATASETS = {d.name: d for d in (CANDLES, TOP_OF_BOOK, PREDICTIONS)}


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC (a time without offset is UTC), or :class:`ExportRefused` saying what is wrong."""
    start, end = (t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    if start >= end:
        raise ExportRefused(f"start {start.isoformat()} is not before end {end.isoformat()}")
    if end - start > MAX_SPAN:
        raise ExportRefused(
            f"a span of {end - start} is too long: one export covers at most {MAX_SPAN.days} days "
            "(export the rest in further files)"
        )
    return start, end


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportRefused(f"unknown format {fmt!r}: use {' or '.join(FORMATS)}")
    return fmt


def filename(symbol: str, dataset: Dataset, start: datetime, end: datetime, fmt: str) -> str:
    """The file's name by what it holds, e.g. ``BTCUSDT-candles-20250301T0000Z-20250302T0000Z.parquet``."""
    stamp = "%Y%m%dT%H%MZ"
    return f"{symbol}-{dataset.name}-{start.astimezone(UTC):{stamp}}-{end.astimezone(UTC):{stamp}}.{fmt}"


async def chunks(
    db: Database,
    dataset: Dataset,
    symbol_id: int,
    start: datetime,
    end: datetime,
    *,
    shadow: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[Sequence[Row]]:
    """The rows in [start, end), oldest first, ``chunk_rows`` at most per chunk (one query each)."""
    key = dataset.first(start)
    extra = (shadow,) if dataset.shadow else ()
    while True:
        async with db.raw() as conn:
            page = await conn.fetch(dataset.sql, symbol_id, end, chunk_rows, *key, *extra)
        if page:
            yield page
        if len(page) < chunk_rows:
            return
        key = dataset.after(page[-1])


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return value  # numbers as Python writes them (floats round-trip exactly), text as is


def _csv_block(dataset: Dataset, rows: Sequence[Row], header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = dataset.names
    if header:
        writer.writerow(names)
    writer.writerows([_csv_value(row[name]) for name in names] for row in rows)
    return out.getvalue().encode()


class _Drain:
    """Where the Parquet writer writes: it keeps only what was not taken yet, but counts every byte
    (the footer records each row group's offset from ``tell``)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        """Nothing is buffered here: ``take`` hands the bytes on."""

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _row_group(dataset: Dataset, writer: pq.ParquetWriter, drain: _Drain, rows: Sequence[Row]) -> bytes:
    table = pa.table(
        {name: pa.array([row[name] for row in rows], type=kind) for name, kind in dataset.columns},
        schema=dataset.schema,
    )
    writer.write_table(table)
    return drain.take()


async def encode(chunks: AsyncIterator[Sequence[Row]], dataset: Dataset, fmt: str) -> AsyncIterator[bytes]:
    """The file, one piece per chunk (the first comes with the first chunk's rows), then the end.

    Encoding runs in a worker thread, so a server's event loop keeps answering meanwhile.
    """
    if check_format(fmt) == "csv":
        header = True
        async for rows in chunks:
            yield await asyncio.to_thread(_csv_block, dataset, rows, header)
            header = False
        if header:  # no rows: the header alone
            yield _csv_block(dataset, [], True)
        return
    drain = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(drain, mode="w"), dataset.schema)
    try:
        async for rows in chunks:
            yield await asyncio.to_thread(_row_group, dataset, writer, drain, rows)
    finally:
        writer.close()
    yield drain.take()
