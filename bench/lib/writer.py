"""The bulk candle writer against raw asyncpg COPY, measured in the same run (``bench/ingest.py``).

Every candle is stored through :class:`CandleWriter`, which adds validation, a merge through a
staging table on overlap, the pair's ``last_candle_time`` and a NOTIFY on top of a binary COPY;
this measures what that costs, as a ratio to the fastest way PostgreSQL takes rows (raw
``copy_records_to_table`` of records built before the clock starts), for a fresh range, a range
that is half already stored, and a full re-write of a stored range (which must change nothing).
Raw COPY runs twice, before and after, to bracket the noise of a shared machine.

Runs in a scratch database (``cryptocast_bench``) created and dropped on the same server, so it
never touches real data. Prints JSON: rows/s of each path and their ratio to raw COPY.
"""

from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
from sqlalchemy.engine import URL

from bench.lib.harness import scratch_database
from cryptocast.records import MINUTE_MS, Candle, ms_to_dt
from cryptocast.sql.bulkcopy import CANDLE_COLUMNS
from cryptocast.sql.database import Database, async_url
from cryptocast.sql.queries import add_symbol, candle_count
from cryptocast.sql.writer import CandleWriter

BENCH_DB = "cryptocast_bench"
START_MS = 1_577_836_800_000  # 2020-01-01


def synthetic_candles(n: int, start_ms: int = START_MS, seed: int = 7) -> list[Candle]:
    """A valid random-walk series of 1-minute candles."""
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    spread = np.abs(rng.normal(0, 5e-4, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 5.0, n)
    out = []
    for i in range(n):
        t = start_ms + i * MINUTE_MS
        v = float(volume[i])
        out.append(
            Candle(
                t,
                float(open_[i]),
                float(high[i]),
                float(low[i]),
                float(close[i]),
                v,
                t + MINUTE_MS - 1,
                v * float(close[i]),
                int(v * 10),
                v / 2,
                v * float(close[i]) / 2,
            )
        )
    return out


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def _raw_copy(db: Database, table: str, candles: list[Candle], sid: int, batch: int) -> float:
    """Raw asyncpg COPY of records built before the clock starts, into an empty identical table."""
    records = [
        (
            sid,
            ms_to_dt(c.open_time),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            ms_to_dt(c.close_time),
            c.quote_volume,
            c.trades,
            c.taker_buy_base,
            c.taker_buy_quote,
            c.provenance.value,
            [],
        )
        for c in candles
    ]
    async with db.raw() as conn:
        await conn.execute(f"TRUNCATE {table}")
        t0 = time.perf_counter()
        for chunk in _batches(records, batch):
            async with conn.transaction():
                await conn.copy_records_to_table(table, records=chunk, columns=CANDLE_COLUMNS)
        return time.perf_counter() - t0


async def _writer(
    writer: CandleWriter, sid: int, candles: list[Candle], batch: int, **kw: bool
) -> tuple[float, int]:
    t0 = time.perf_counter()
    inserted = 0
    for chunk in _batches(candles, batch):
        inserted += (await writer.write(sid, chunk, **kw)).inserted
    return time.perf_counter() - t0, inserted


async def _run(server_url: URL, rows: int, batch: int) -> dict:
    async with scratch_database(server_url, BENCH_DB) as url:
        db = Database(url)
        writer = CandleWriter(db)
        sid = await add_symbol(db, "BENCHUSDT", "BENCH", "USDT")
        async with db.raw() as conn:
            await conn.execute("CREATE TABLE raw_copy (LIKE price_history INCLUDING ALL)")
        fresh = synthetic_candles(rows)
        half = synthetic_candles(rows, start_ms=START_MS + (rows // 2) * MINUTE_MS, seed=8)

        raw_s = await _raw_copy(db, "raw_copy", fresh, sid, batch)
        fresh_s, fresh_n = await _writer(writer, sid, fresh, batch)
        half_s, half_n = await _writer(writer, sid, half, batch)
        rewrite_s, rewrite_n = await _writer(writer, sid, fresh, batch)
        raw2_s = await _raw_copy(db, "raw_copy", fresh, sid, batch)  # again, to bracket the noise
        total = await candle_count(db, sid)
        await db.dispose()

    raw_rate = rows / min(raw_s, raw2_s)

    def scenario(seconds: float, inserted: int) -> dict:
        rate = rows / seconds
        return {
            "rows": rows,
            "inserted": inserted,
            "seconds": round(seconds, 3),
            "rows_per_s": round(rate),
            "ratio_vs_raw_copy": round(rate / raw_rate, 3),
        }

    return {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batch": batch,
        "raw_copy": {
            "rows": rows,
            "seconds": [round(raw_s, 3), round(raw2_s, 3)],
            "rows_per_s": round(raw_rate),
        },
        "writer_fresh": scenario(fresh_s, fresh_n),
        "writer_half_duplicate": scenario(half_s, half_n),
        "writer_rewrite_stored": scenario(rewrite_s, rewrite_n),
        "rows_stored_at_end": total,
        "targets": {"fresh_ratio_min": 0.5, "rewrite_ratio_min": 0.3, "rewrite_changes": 0},
    }


async def run_ingest_bench(url: URL | str, rows: int, batch: int) -> str:
    """``rows`` candles per scenario in writes of ``batch``, on the server of ``url``; JSON."""
    result = await _run(async_url(url), rows, batch)
    return json.dumps(result, indent=2)
