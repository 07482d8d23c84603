"""A real PostgreSQL outage during live ingestion: candles are held, then written; nothing lost or doubled."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from cryptocast.actors.ingestor import IngestConfig
from cryptocast.records import MINUTE_MS
from cryptocast.sql import migrate
from cryptocast.sql.database import Database
from cryptocast.sql.embedded import EmbeddedPostgres
from tests.actors.helpers import gaps_in, ingest_setup, running, stored_open_times, wait_until

OUTAGE_S = 30.0


@pytest.mark.slow
@pytest.mark.parametrize("buffer_limit", [20_000, 5])
async def test_database_outage_loses_nothing(buffer_limit: int) -> None:
    """With a roomy buffer everything is held; with a tiny one the overflow is refetched over REST."""
    pg_dir = Path(tempfile.mkdtemp(prefix="cryptocast-outage-"))
    server = EmbeddedPostgres(pg_dir)
    url = server.start()
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    try:
        config = IngestConfig(lookback_ms=None, buffer_limit=buffer_limit)
        async with ingest_setup(db, speed=60.0, config=config) as (replay, ingestor):
            async with running(ingestor):
                await wait_until(lambda: _is(ingestor.state == "live"))
                await asyncio.to_thread(server.stop)  # the real server goes away
                await asyncio.sleep(OUTAGE_S)
                assert ingestor.status()["db_down"], "the ingestor should have noticed the outage"
                held = len(ingestor._pending)
                assert held >= min(buffer_limit, 10)
                await asyncio.to_thread(server.start)
                target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
                await wait_until(
                    lambda: _is((ingestor.last_stored or 0) >= target and not ingestor._db_down), 60
                )
            times = await stored_open_times(db, "BTCUSDT")
        assert gaps_in(times) == [] and len(times) == len(set(times))
        if buffer_limit == 5:
            assert ingestor.counters.repaired > 0, "dropped candles should have come back over REST"
    finally:
        await db.dispose()
        server.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)


async def _is(value: bool) -> bool:
    return value
