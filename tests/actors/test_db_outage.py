"""A real PostgreSQL outage during live ingestion: candles are held, then written; nothing lost or doubled."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from cryptocast.actors.budget import LocalBudget
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.records import MINUTE_MS
from cryptocast.serve.reads import fetch
from cryptocast.sql import migrate, pairmetrics
from cryptocast.sql.database import Database
from cryptocast.sql.embedded import EmbeddedPostgres
from tests.actors.helpers import gaps_in, ingest_setup, running, stored_open_times, until_live, until_stored
from tests.helpers import eventually

OUTAGE_S = 30.0


@asynccontextmanager
async def own_server() -> AsyncIterator[tuple[EmbeddedPostgres, Database]]:
    """A PostgreSQL server of the test's own, migrated, that the test may stop and start."""
    pg_dir = Path(tempfile.mkdtemp(prefix="cryptocast-outage-"))
    server = EmbeddedPostgres(pg_dir)
    url = server.start()
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    try:
        yield server, db
    finally:
        await db.dispose()
        server.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("buffer_limit", [20_000, 5])
async def test_database_outage_loses_nothing(buffer_limit: int) -> None:
    """With a roomy buffer everything is held; with a tiny one the overflow is refetched over REST."""
    async with own_server() as (server, db):
        config = IngestConfig(lookback_ms=None, buffer_limit=buffer_limit)
        async with ingest_setup(db, speed=60.0, config=config) as (replay, ingestor):
            async with running(ingestor):
                await until_live(ingestor)
                await asyncio.to_thread(server.stop)  # the real server goes away
                await asyncio.sleep(OUTAGE_S)
                assert ingestor.status()["db_down"], "the ingestor should have noticed the outage"
                held = len(ingestor.held.pending)
                assert held >= min(buffer_limit, 10)
                await asyncio.to_thread(server.start)
                target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
                await eventually(
                    lambda: (ingestor.last_stored or 0, ingestor.held.db_down),
                    f"stored up to {target} with the database back",
                    timeout_s=60,
                    until=lambda seen: seen[0] >= target and not seen[1],
                )
            times = await stored_open_times(db, "BTCUSDT")
            counted = {r["name"]: r["value"] for r in await fetch(db, pairmetrics.READ_SQL)}
        assert gaps_in(times) == [] and len(times) == len(set(times))
        assert counted["ingest_candles_stored"] == ingestor.counters.written  # the outage lost no count
        if buffer_limit == 5:
            assert ingestor.counters.repaired > 0, "dropped candles should have come back over REST"


@pytest.mark.slow
async def test_crash_after_a_buffer_overflow_leaves_no_gap() -> None:
    """Killed after the held candles landed but before REST brought back the dropped ones, the
    pair's next run finds the gap in the ledger and repairs it: 0 missing minutes."""
    async with own_server() as (server, db):
        config = IngestConfig(lookback_ms=None, buffer_limit=5, reconcile_every=10**9)  # REST only to repair
        async with ingest_setup(db, speed=60.0, config=config) as (replay, first):
            symbols = set(replay.market.symbols)
            task = asyncio.create_task(first.run(asyncio.Event()))
            await until_live(first)
            await asyncio.to_thread(server.stop)
            await eventually(
                lambda: first.counters.dropped_from_buffer,
                "3 candles dropped from the full buffer",
                until=lambda dropped: dropped >= 3,
            )
            replay.faults.apply({"5xx": 1.0}, symbols)  # the repair of the dropped span cannot finish
            await asyncio.to_thread(server.start)
            await eventually(
                lambda: (first.held.db_down, len(first.held.pending)),
                "the held candles written",
                timeout_s=60,
                until=lambda held: not held[0] and not held[1],
            )
            await asyncio.sleep(1.0)  # the repair is under way, stuck on the exchange's errors
            task.cancel()  # the crash: nothing after this point runs
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            left = gaps_in(await stored_open_times(db, "BTCUSDT"))
            assert left, "the crash should have left the dropped candles missing"

            replay.faults.apply({"5xx": 0}, symbols)
            second = PairIngestor(
                "BTCUSDT", db, first.exchange, LocalBudget(), IngestConfig(lookback_ms=None)
            )
            async with running(second):
                await until_live(second, timeout_s=60)
                target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
                await until_stored(second, target, timeout_s=60)
            times = await stored_open_times(db, "BTCUSDT")
            async with db.connect() as conn:
                ledger = (await conn.execute(text("SELECT kind, count(*) FROM gaps GROUP BY kind"))).all()
        assert gaps_in(times) == [], f"missing after the restart: {left}"
        assert len(times) == len(set(times))
        assert ledger == [], "a repaired gap leaves the ledger"
