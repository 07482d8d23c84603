"""One pair's ingestion against the replay exchange and a real PostgreSQL, without Ray."""

from __future__ import annotations

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from tests.actors.helpers import gaps_in, ingest_setup, running, stored_open_times, wait_until


async def test_backfill_then_live_with_an_exact_seam(db: Database) -> None:
    async with ingest_setup(db) as (server, ingestor):
        async with running(ingestor):
            await wait_until(lambda: _async(ingestor.state == "live"))
            live_from = ingestor.last_stored
            await wait_until(lambda: _async((ingestor.last_stored or 0) >= live_from + 5 * MINUTE_MS))
        times = await stored_open_times(db, "BTCUSDT")
    assert gaps_in(times) == []
    assert len(times) == len(set(times))
    assert times[-1] >= live_from + 5 * MINUTE_MS
    assert ingestor.counters.written == len(times)


async def _async(value: bool) -> bool:
    return value
