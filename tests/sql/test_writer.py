"""The bulk candle writer against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text

from bench.lib.writer import synthetic_candles
from cryptocast.records import MINUTE_MS, BookTop, Candle, CandleBlock, Provenance
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol, candle_count
from cryptocast.sql.rowcheck import MAX_PRICE
from cryptocast.sql.schema import CANDLES_CHANNEL, price_history, symbols, top_of_book
from cryptocast.sql.writer import CandleWriter, WriteError

START = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS


@pytest.fixture
async def pair(db: Database) -> int:
    return await add_symbol(db, "BTCUSDT", "BTC", "USDT")


async def test_write_is_idempotent(db: Database, pair: int) -> None:
    writer = CandleWriter(db)
    candles = synthetic_candles(500, start_ms=START)
    first = await writer.write(pair, candles)
    assert (first.received, first.inserted, first.duplicates) == (500, 500, 0)
    async with db.connect() as conn:
        before = (
            await conn.execute(
                text("SELECT md5(string_agg(p::text, ',' ORDER BY open_time)) FROM price_history p")
            )
        ).scalar()
    second = await writer.write(pair, candles)
    assert (second.inserted, second.duplicates) == (0, 500)
    async with db.connect() as conn:
        after = (
            await conn.execute(
                text("SELECT md5(string_agg(p::text, ',' ORDER BY open_time)) FROM price_history p")
            )
        ).scalar()
    assert before == after
    assert await candle_count(db, pair) == 500


async def test_overlapping_batch_inserts_only_new_minutes(db: Database, pair: int) -> None:
    writer = CandleWriter(db)
    await writer.write(pair, synthetic_candles(100, start_ms=START))
    overlap = synthetic_candles(100, start_ms=START + 50 * MINUTE_MS, seed=3)
    result = await writer.write(pair, overlap)
    assert (result.inserted, result.duplicates) == (50, 50)
    assert await candle_count(db, pair) == 150


async def test_stored_candle_keeps_every_field(db: Database, pair: int) -> None:
    row = [
        START,
        "84000.10",
        "84100.00",
        "83950.5",
        "84050.25",
        "12.5",
        START + 59_999,
        "1050000.5",
        321,
        "6.25",
        "525000.25",
        "0",
    ]
    candle = Candle.from_rest_row(row, derived_fields=("trades",))
    await CandleWriter(db).write(pair, [candle])
    async with db.connect() as conn:
        stored = (await conn.execute(select(price_history))).mappings().one()
    assert stored["open_time"].timestamp() * 1000 == START
    assert stored["close_time"].timestamp() * 1000 == pytest.approx(START + 59_999, abs=0.01)
    assert (stored["open"], stored["high"], stored["low"], stored["close"]) == (
        84000.10,
        84100.0,
        83950.5,
        84050.25,
    )
    assert (stored["volume"], stored["quote_volume"], stored["trades"]) == (12.5, 1050000.5, 321)
    assert (stored["taker_buy_base"], stored["taker_buy_quote"]) == (6.25, 525000.25)
    assert stored["provenance"] == "rest"
    assert stored["derived_fields"] == ["trades"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"close": math.nan}, "non-finite"),
        ({"high": 1.0}, "below low"),
        ({"volume": -1.0}, "negative volume"),
        ({"open": 1e9}, "outside"),
        ({"open_time": START + 5}, "minute boundary"),
        ({"low": 0.0, "open": 0.0}, "non-positive"),
        ({"high": 2 * MAX_PRICE}, "above the sanity bound"),
        ({"open": 2 * MAX_PRICE, "high": 2 * MAX_PRICE, "close": 2 * MAX_PRICE}, "above the sanity bound"),
    ],
)
async def test_bad_rows_are_named_and_good_rows_land(
    db: Database, pair: int, change: dict, reason: str
) -> None:
    candles = synthetic_candles(10, start_ms=START)
    candles[4] = dataclasses.replace(candles[4], **change)
    result = await CandleWriter(db).write(pair, candles)
    assert [r.index for r in result.rejected] == [4]
    assert reason in result.rejected[0].reason
    assert "row 4" in str(result.rejected[0])
    assert result.inserted == 9
    assert await candle_count(db, pair) == 9


async def test_database_constraints_back_up_the_writer(db: Database, pair: int) -> None:
    """A row that bypasses the writer's checks is still refused by the schema, with a named constraint."""
    async with db.raw() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="ohlc_order"):
            await conn.execute(
                "INSERT INTO price_history VALUES ($1, to_timestamp(0), 10, 5, 6, 7, 1, to_timestamp(59), 1, 1, 0, 0, 'rest')",
                pair,
            )


# One candle (a live close) takes a one-statement path; a batch goes through COPY: both behave alike.
BATCH_SIZES = pytest.mark.parametrize("n", [1, 5])


@BATCH_SIZES
async def test_unknown_pair_is_refused_and_nothing_lands(db: Database, n: int) -> None:
    with pytest.raises(WriteError, match="no pair with id 999"):
        await CandleWriter(db).write(999, synthetic_candles(n, start_ms=START))
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM price_history"))).scalar() == 0


@BATCH_SIZES
async def test_write_notifies_newest_minute_and_advances_pair(db: Database, pair: int, n: int) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    async with db.raw() as listener:
        await listener.add_listener(CANDLES_CHANNEL, lambda *args: received.put_nowait(args[3]))
        try:
            candles = synthetic_candles(n, start_ms=START)
            result = await CandleWriter(db).write(pair, candles)
            assert result.inserted == n
            payload = json.loads(await asyncio.wait_for(received.get(), 5))
            assert payload == {
                "symbol_id": pair,
                "symbol": "BTCUSDT",
                "open_time": START + (n - 1) * MINUTE_MS,
                "count": n,
            }
            assert (await CandleWriter(db).write(pair, candles)).inserted == 0  # nothing new: no news
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(received.get(), 0.5)
        finally:
            await listener.remove_listener(CANDLES_CHANNEL, lambda *args: None)
    async with db.connect() as conn:
        last = (await conn.execute(select(symbols.c.last_candle_time).where(symbols.c.id == pair))).scalar()
    assert last.timestamp() * 1000 == START + (n - 1) * MINUTE_MS


@BATCH_SIZES
async def test_older_batch_never_moves_last_candle_back(db: Database, pair: int, n: int) -> None:
    writer = CandleWriter(db)
    await writer.write(pair, synthetic_candles(5, start_ms=START + 100 * MINUTE_MS))
    await writer.write(pair, synthetic_candles(n, start_ms=START))
    async with db.connect() as conn:
        last = (await conn.execute(select(symbols.c.last_candle_time).where(symbols.c.id == pair))).scalar()
    assert last.timestamp() * 1000 == START + 104 * MINUTE_MS


async def test_provenance_is_stored(db: Database, pair: int) -> None:
    candle = dataclasses.replace(synthetic_candles(1, start_ms=START)[0], provenance=Provenance.WEBSOCKET)
    await CandleWriter(db).write(pair, [candle])
    async with db.connect() as conn:
        assert (await conn.execute(select(price_history.c.provenance))).scalar() == "websocket"


async def test_mixed_kinds_keep_their_provenance_and_derived_fields(db: Database, pair: int) -> None:
    """One batch of several provenances and derived-field sets, copied directly, then merged, then replaced."""
    kinds = [
        (Provenance.REST, ("trades", "quote_volume")),
        (Provenance.WEBSOCKET, ()),
        (Provenance.REPAIR, ("trades",)),
    ]
    candles = [
        dataclasses.replace(c, provenance=kinds[i % 3][0], derived_fields=kinds[i % 3][1])
        for i, c in enumerate(synthetic_candles(9, start_ms=START))
    ]
    writer = CandleWriter(db)
    assert (await writer.write(pair, CandleBlock.from_candles(candles[:6]))).inserted == 6  # straight COPY
    assert (await writer.write(pair, candles[3:])).inserted == 3  # overlaps: through staging
    changed = [dataclasses.replace(c, close=c.low, provenance=Provenance.REPAIR) for c in candles[:2]]
    assert await writer.replace(pair, changed) == 2
    async with db.connect() as conn:
        stored = (
            (await conn.execute(select(price_history).order_by(price_history.c.open_time))).mappings().all()
        )
    expected = changed + candles[2:]
    assert [(r["provenance"], r["derived_fields"], r["close"]) for r in stored] == [
        (c.provenance.value, list(c.derived_fields), c.close) for c in expected
    ]
    assert [r["close_time"].timestamp() * 1000 for r in stored] == pytest.approx(
        [c.close_time for c in expected]
    )


async def test_top_of_book_last_quote_wins_and_crossed_quotes_are_dropped(db: Database, pair: int) -> None:
    writer = CandleWriter(db)
    assert (await writer.write_book(pair, [BookTop(START, 100.0, 1.0, 100.5, 2.0)])).inserted == 1
    assert (
        await writer.write_book(pair, [BookTop(START, 101.0, 1.5, 101.2, 2.5, derived=True)])
    ).inserted == 1
    assert (await writer.write_book(pair, [BookTop(START + MINUTE_MS, 102.0, 1.0, 101.0, 1.0)])).inserted == 0
    async with db.connect() as conn:
        rows = (await conn.execute(select(top_of_book))).mappings().all()
    assert len(rows) == 1
    assert (rows[0]["bid_price"], rows[0]["ask_price"], rows[0]["derived"]) == (101.0, 101.2, True)


async def test_a_live_candle_and_its_top_of_book_land_in_one_statement(db: Database, pair: int) -> None:
    writer = CandleWriter(db)
    (candle,) = synthetic_candles(1, start_ms=START)
    top = BookTop(START, candle.close - 0.5, 1.0, candle.close + 0.5, 2.0)
    assert (await writer.write(pair, [candle], top)).inserted == 1
    again = BookTop(START, candle.close - 0.25, 3.0, candle.close + 0.25, 4.0, derived=True)
    assert (await writer.write(pair, [candle], again)).inserted == 0, "the candle is stored once"
    async with db.connect() as conn:
        books = (await conn.execute(select(top_of_book))).mappings().all()
    assert await candle_count(db, pair) == 1
    assert [(b["minute"].timestamp() * 1000, b["bid_qty"], b["derived"]) for b in books] == [
        (START, 3.0, True)
    ]
    with pytest.raises(ValueError, match="own minute"):
        await writer.write(pair, [candle], dataclasses.replace(top, minute=START + MINUTE_MS))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bid_qty": -1.0}, "negative size"),
        ({"ask_qty": -0.5}, "negative size"),
        ({"ask_price": math.inf}, "non-finite"),
        ({"bid_qty": math.nan}, "non-finite"),
        ({"bid_price": 0.0}, "non-positive bid"),
        ({"ask_price": 99.0}, "crossed"),
        ({"ask_price": 2 * MAX_PRICE}, "above the sanity bound"),
    ],
)
async def test_bad_quotes_are_named_and_good_quotes_land(
    db: Database, pair: int, change: dict, reason: str
) -> None:
    tops = [BookTop(START + i * MINUTE_MS, 100.0, 1.0, 100.5, 2.0) for i in range(3)]
    tops[1] = dataclasses.replace(tops[1], **change)
    result = await CandleWriter(db).write_book(pair, tops)
    assert [r.index for r in result.rejected] == [1] and reason in result.rejected[0].reason
    assert result.inserted == 2
    async with db.connect() as conn:
        minutes = (await conn.execute(select(top_of_book.c.minute).order_by(top_of_book.c.minute))).scalars()
        assert [m.timestamp() * 1000 for m in minutes] == [START, START + 2 * MINUTE_MS]


async def test_a_quote_the_schema_refuses_is_reported_not_raised(db: Database, pair: int) -> None:
    """The last line behind :func:`check_quote`: a constraint violation refuses the batch, it never raises."""
    tops = [BookTop(START, 100.0, 1.0, 100.5, 2.0), BookTop(START + MINUTE_MS, 100.0, 1.0, 100.5, 2.0, None)]
    result = await CandleWriter(db).write_book(pair, tops)  # type: ignore[arg-type]
    assert result.inserted == 0 and len(result.rejected) == 2
    assert 'column "derived"' in result.rejected[0].reason and "not-null" in result.rejected[1].reason
    async with db.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM top_of_book"))).scalar() == 0


async def test_stale_last_candle_marker_falls_back_to_merge(db: Database, pair: int) -> None:
    """The fast path trusts symbols.last_candle_time; if that lies, the batch still lands exactly once."""
    writer = CandleWriter(db)
    candles = synthetic_candles(20, start_ms=START)
    await writer.write(pair, candles[:10])
    async with db.begin() as conn:
        await conn.execute(text("UPDATE symbols SET last_candle_time = NULL"))
    result = await writer.write(pair, candles)
    assert (result.inserted, result.duplicates) == (10, 10)
    assert await candle_count(db, pair) == 20


async def test_concurrent_overlapping_writers_store_each_minute_once(db: Database, pair: int) -> None:
    writers = [CandleWriter(db) for _ in range(4)]
    batches = [synthetic_candles(300, start_ms=START + i * 100 * MINUTE_MS, seed=i) for i in range(4)]
    results = await asyncio.gather(*(w.write(pair, b) for w, b in zip(writers, batches, strict=True)))
    assert sum(r.inserted for r in results) == await candle_count(db, pair) == 600


def test_ingest_benchmark_runs_and_reports_consistent_counts(blank_db_url) -> None:
    """A small run of the benchmark: fresh inserts all, half-stored inserts half, a re-write changes nothing."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOCAST_")}
    env["CRYPTOCAST_DATABASE_URL"] = blank_db_url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    out = subprocess.run(
        [sys.executable, "bench/ingest.py", "--rows", "2000", "--batch", "500"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["writer_fresh"]["inserted"] == 2000
    assert report["writer_half_duplicate"]["inserted"] == 1000
    assert report["writer_rewrite_stored"]["inserted"] == 0
    assert report["rows_stored_at_end"] == 3000
    assert report["raw_copy"]["rows_per_s"] > 0
