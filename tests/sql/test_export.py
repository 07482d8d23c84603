"""Exports read from a real PostgreSQL in bounded chunks and written as CSV or Parquet files that
read back as exactly the stored rows; predictions come with their outcomes; ``cryptocast export``
writes the same files and refuses what is out of bounds in one line."""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import URL

from cryptocast.exitcodes import USAGE
from cryptocast.sql import export
from cryptocast.sql.database import Database
from tests.helpers import CLI, cli_env
from tests.sql.export_data import CANDLE_COLUMNS, PAIR, Seeded, iso, seed, stored

CLI_TIMEOUT_S = 120


@pytest.fixture
async def seeded(db: Database) -> Seeded:
    return await seed(db)


async def _file(
    db: Database, seeded: Seeded, name: str, fmt: str, *, chunk_rows: int, shadow: bool = False
) -> bytes:
    dataset = export.DATASETS[name]
    chunks = export.chunks(
        db, dataset, seeded.symbol_id, seeded.start, seeded.end, shadow=shadow, chunk_rows=chunk_rows
    )
    return b"".join([piece async for piece in export.encode(chunks, dataset, fmt)])


async def _sizes(rows: AsyncIterator) -> list[int]:
    return [len(chunk) async for chunk in rows]


async def test_rows_come_in_chunks_of_at_most_the_chunk_size(db, seeded) -> None:
    minutes = len(seeded.closes)
    assert minutes == 1440
    sizes = await _sizes(
        export.chunks(db, export.CANDLES, seeded.symbol_id, seeded.start, seeded.end, chunk_rows=100)
    )
    assert sizes == [100] * (minutes // 100) + [minutes % 100]
    data = await _file(db, seeded, "candles", "parquet", chunk_rows=500)
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [500, 500, 440]


async def test_parquet_reads_back_as_the_stored_candles(db, seeded) -> None:
    table = pq.read_table(io.BytesIO(await _file(db, seeded, "candles", "parquet", chunk_rows=700)))
    assert table.schema == export.CANDLES.schema
    assert table.to_pylist() == await stored(db, "price_history", CANDLE_COLUMNS, "open_time", seeded)


async def test_csv_reads_back_as_the_stored_top_of_book(db, seeded) -> None:
    text = (await _file(db, seeded, "top-of-book", "csv", chunk_rows=300)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = await stored(
        db, "top_of_book", "minute, bid_price, bid_qty, ask_price, ask_qty, derived", "minute", seeded
    )
    assert len(rows) == len(expected) == 1440
    for got, want in zip(rows, expected, strict=True):
        assert got["minute"] == iso(want["minute"])
        assert [float(got[k]) for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")] == [
            want[k] for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")
        ]
        assert got["derived"] == ("true" if want["derived"] else "false")


async def test_predictions_carry_their_outcomes(db, seeded) -> None:
    rows = pq.read_table(
        io.BytesIO(await _file(db, seeded, "predictions", "parquet", chunk_rows=7))
    ).to_pylist()
    assert len(rows) == 40 * 4 and all(r["served"] and r["model_kind"] == "persistence" for r in rows)
    keys = [(r["origin_time"], r["model_id"], r["horizon"]) for r in rows]
    assert keys == sorted(set(keys))  # pages resumed after each other's last key: none twice, none lost
    outcomes = {"scored": 0, "pending": 0, "hit": 0, "miss": 0}
    for r in rows:
        assert r["target_time"] == r["origin_time"] + timedelta(minutes=r["horizon"])
        actual = seeded.closes.get(r["target_time"])
        assert r["actual"] == actual
        if actual is None:
            outcomes["pending"] += 1
            assert r["error"] is None and r["within_80"] is None and r["within_95"] is None
            continue
        outcomes["scored"] += 1
        assert r["error"] == pytest.approx(actual - r["predicted"])
        if r["lower_80"] is None:
            assert r["within_80"] is None and r["within_95"] is None
            continue
        assert r["within_80"] == (r["lower_80"] <= actual <= r["upper_80"])
        assert r["within_95"] == (r["lower_95"] <= actual <= r["upper_95"])
        outcomes["hit" if r["within_80"] else "miss"] += 1
    assert all(outcomes.values()), outcomes  # every case occurs in the data
    everything = await _file(db, seeded, "predictions", "csv", shadow=True, chunk_rows=50)
    shadow = [r for r in csv.DictReader(io.StringIO(everything.decode())) if r["served"] == "false"]
    assert len(shadow) == 40 * 4 and {r["model_kind"] for r in shadow} == {"lstm"}


async def test_an_empty_range_is_a_header_or_an_empty_table(db, seeded) -> None:
    before = seeded.start - timedelta(days=2)
    chunks = export.chunks(db, export.CANDLES, seeded.symbol_id, before, seeded.start)
    assert (b"".join([p async for p in export.encode(chunks, export.CANDLES, "csv")])).decode().strip() == (
        ",".join(export.CANDLES.names)
    )
    chunks = export.chunks(db, export.CANDLES, seeded.symbol_id, before, seeded.start)
    data = b"".join([p async for p in export.encode(chunks, export.CANDLES, "parquet")])
    assert pq.read_table(io.BytesIO(data)).num_rows == 0


@pytest.mark.parametrize(
    ("start", "end", "says"),
    [("2025-03-02", "2025-03-01", "is not before"), ("2025-01-01", "2025-03-01", "at most 31 days")],
)
def test_ranges_out_of_bounds_are_refused(start: str, end: str, says: str) -> None:
    with pytest.raises(export.ExportRefused, match=says):
        export.check_range(datetime.fromisoformat(start), datetime.fromisoformat(end))


def _cli(db_url: URL, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = cli_env({"CRYPTOCAST_DATABASE_URL": db_url.render_as_string(hide_password=False)})
    return subprocess.run(
        [*CLI, "export", "--pair", PAIR, *args], env=env, cwd=cwd, capture_output=True, timeout=CLI_TIMEOUT_S
    )


async def test_cli_writes_parquet_named_after_its_arguments_and_csv_to_stdout(
    db, db_url, seeded, tmp_path
) -> None:
    span = ["--start", iso(seeded.start), "--end", iso(seeded.end)]
    done = _cli(db_url, tmp_path, "--what", "candles", *span, "--format", "parquet")
    assert done.returncode == 0, done.stderr.decode()
    name = export.filename(PAIR, export.CANDLES, seeded.start, seeded.end, "parquet")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no partial file left beside it
    table = pq.read_table(tmp_path / name)
    assert table.to_pylist() == await stored(db, "price_history", CANDLE_COLUMNS, "open_time", seeded)
    assert "wrote 1,440 candles rows" in done.stderr.decode()
    piped = _cli(db_url, tmp_path, "--what", "predictions", *span, "--format", "csv", "--out", "-")
    assert piped.returncode == 0, piped.stderr.decode()
    lines = piped.stdout.decode().splitlines()
    assert lines[0].split(",") == export.PREDICTIONS.names and len(lines) == 1 + 40 * 4


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--format", "xlsx"], "unknown format 'xlsx'"),
        (["--start", "2025-01-01", "--end", "2025-03-01"], "at most 31 days"),
        (["--start", "2025-03-02", "--end", "2025-03-01"], "is not before"),
        (["--start", "yesterday"], "is not an ISO 8601 time"),
        (["--what", "trades"], "unknown --what 'trades'"),
        (["--out", "-"], "only CSV goes to stdout"),
        (["--pair", "ETHUSDT"], "unknown pair ETHUSDT"),
        (["--pair", "BTC/USDT"], "is not a symbol"),
    ],
)
async def test_cli_refuses_with_one_line(db_url, tmp_path, args: list[str], says: str) -> None:
    defaults = {"--start": "2025-03-01", "--end": "2025-03-02"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    flat = [x for k, v in (defaults | given).items() for x in (k, v)]
    done = _cli(db_url, tmp_path, *flat)
    message = done.stderr.decode().strip()
    assert done.returncode == USAGE and says in message, message
    assert len(message.splitlines()) == 1, message
    assert list(tmp_path.iterdir()) == []
