"""Ingestion under every exchange fault the replay can inject: 0 missing minutes, 0 duplicates,
and no candle from the future."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from tests.actors.helpers import gaps_in, ingest_setup, running, stored_open_times, until_live, until_stored
from tests.helpers import eventually

pytestmark = [pytest.mark.embedded_only, pytest.mark.slow]

FAULTS = {
    "socket_drops": ({"drop": 0.7}, 4.0),
    "stalled_stream": ({"stall": "*"}, 6.0),
    "queue_overflow": ({"burst": 400}, 2.0),
    "malformed_messages": ({"malformed": 0.05}, 3.0),
    "rest_5xx": ({"5xx": 0.5}, 3.0),
    "storm_429": ({"storm": 2}, 3.0),
    "ban_418": ({"ban": 2}, 3.0),
}
CLEAR = {"drop": 0, "stall": "", "malformed": 0, "5xx": 0}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_loses_no_minute(db: Database, fault: str) -> None:
    spec, seconds = FAULTS[fault]
    async with ingest_setup(db, speed=300.0) as (server, ingestor):
        async with running(ingestor):
            await until_live(ingestor)
            server.faults.apply(spec, set(server.market.symbols))
            if fault in ("storm_429", "ban_418", "rest_5xx"):
                ingestor.config.reconcile_every = 1  # a REST call per closed candle, into the fault
            await asyncio.sleep(seconds)
            server.faults.apply(CLEAR, set(server.market.symbols))
            await asyncio.sleep(1.0)
            target = server.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await until_stored(ingestor, target, timeout_s=45)
        times = await stored_open_times(db, "BTCUSDT")
    assert gaps_in(times) == [], f"{fault}: missing minutes"
    assert len(times) == len(set(times))
    if fault in ("socket_drops", "stalled_stream", "queue_overflow", "malformed_messages"):
        assert ingestor.counters.reconnects >= 1, "the watchdog should have opened a fresh stream"
    if fault in ("storm_429", "ban_418"):
        assert ingestor.budget.budget.penalties >= 1, "the client should have seen and honoured Retry-After"
    if fault == "rest_5xx":
        assert ingestor.last_error and "HTTP 5" in ingestor.last_error


async def test_future_dated_candle_is_refused_and_the_pair_streams_on(db: Database) -> None:
    """A closed candle dated a week ahead is neither stored nor taken as the newest minute seen."""
    async with ingest_setup(db, speed=300.0) as (server, ingestor):
        async with running(ingestor):
            await until_live(ingestor)
            server.faults.apply({"future": "BTCUSDT:10080"}, set(server.market.symbols))
            await eventually(
                lambda: server.faults.future_pending,
                "the future-dated candle sent",
                until=lambda pending: not pending,
            )
            sent_at = server.clock.now()
            target = sent_at // MINUTE_MS * MINUTE_MS + 5 * MINUTE_MS  # minutes that close after it
            await until_stored(ingestor, target)
            now = server.clock.now()
        times = await stored_open_times(db, "BTCUSDT")
        async with db.connect() as conn:
            ledgered = (await conn.execute(text("SELECT count(*) FROM gaps"))).scalar()
    assert max(times) <= now, "a candle from the future was stored"
    assert gaps_in(times) == [] and len(times) == len(set(times))
    assert ledgered == 0, "the minutes before the future candle are no exchange holes"
    assert ingestor.counters.future_rejected == 1
