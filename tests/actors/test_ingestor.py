"""One pair's ingestion against the replay exchange and a real PostgreSQL, without Ray."""

from __future__ import annotations

import asyncio

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from tests.actors.helpers import gaps_in, ingest_setup, running, stored_open_times, until_live, until_stored
from tests.helpers import eventually


async def test_backfill_then_live_with_an_exact_seam(db: Database) -> None:
    async with ingest_setup(db) as (_server, ingestor):
        async with running(ingestor):
            await until_live(ingestor)
            live_from = ingestor.last_stored
            await until_stored(ingestor, live_from + 5 * MINUTE_MS)
        times = await stored_open_times(db, "BTCUSDT")
    assert gaps_in(times) == []
    assert len(times) == len(set(times))
    assert times[-1] >= live_from + 5 * MINUTE_MS
    assert ingestor.counters.written == len(times)


async def test_restart_resumes_from_last_stored_minute_and_refetches_nothing(db: Database) -> None:
    async with ingest_setup(db, speed=60.0) as (_server, first):
        async with running(first):
            await until_live(first)
        stored = len(await stored_open_times(db, "BTCUSDT"))
        assert stored > 300  # six hours of history

        from cryptocast.actors.budget import LocalBudget
        from cryptocast.actors.ingestor import IngestConfig, PairIngestor

        second = PairIngestor("BTCUSDT", db, first.exchange, LocalBudget(), IngestConfig(lookback_ms=None))
        async with running(second):
            await until_live(second)
            new_minutes = (second.last_stored - first.last_stored) // MINUTE_MS
            written = second.counters.written
        # /time twice for the clock, exchangeInfo once for the stream, and one klines page for the
        # minutes that closed in between: nothing already stored is downloaded again.
        assert second.counters.rest_calls <= 4
        assert written == new_minutes < 100
        times = await stored_open_times(db, "BTCUSDT")
    assert gaps_in(times) == [] and len(times) == len(set(times))


async def test_2019_exchange_holes_are_ledgered_as_exchange_holes(db: Database) -> None:
    """ETHBTC's recording has the three real outages of Nov 2019: they must come back as holes."""
    from sqlalchemy import text

    from tests.exchange.conftest import SHIFT_MS, exchange_start_at

    start, history = exchange_start_at("ETHBTC", 30 * 24 * 60 * MINUTE_MS)  # now: 30 days after the first bar
    async with ingest_setup(db, "ETHBTC", speed=60.0, history_ms=history, exchange_start_ms=start) as (
        _server,
        ing,
    ):
        async with running(ing):
            await until_live(ing, timeout_s=120)
        async with db.connect() as conn:
            rows = (
                await conn.execute(text("SELECT start_time, end_time, kind FROM gaps ORDER BY start_time"))
            ).all()
        times = await stored_open_times(db, "ETHBTC")
    holes = [
        ((int(a.timestamp() * 1000) - SHIFT_MS), (int(b.timestamp() * 1000) - SHIFT_MS), k)
        for a, b, k in rows
    ]
    from datetime import UTC, datetime

    def ms(text_: str) -> int:
        return int(datetime.fromisoformat(text_).replace(tzinfo=UTC).timestamp() * 1000)

    expected = [
        (ms("2019-11-13T02:00"), ms("2019-11-13T04:19"), "exchange_hole"),
        (ms("2019-11-13T05:30"), ms("2019-11-13T05:32"), "exchange_hole"),
        (ms("2019-11-25T02:00"), ms("2019-11-25T03:59"), "exchange_hole"),
    ]
    assert holes == expected
    # every missing minute in the stored data is one of those holes
    missing = sum((b - a) // MINUTE_MS - 1 for a, b in gaps_in(times))
    assert missing == sum((b - a) // MINUTE_MS + 1 for a, b, _ in expected)


async def test_planned_renewal_before_the_connection_cutoff_loses_nothing(db: Database) -> None:
    """The replacement stream opens before the old one closes; the overlap is deduplicated."""
    from cryptocast.actors.ingestor import IngestConfig

    config = IngestConfig(lookback_ms=None, connection_lifetime_ms=20 * MINUTE_MS)  # 2 s of wall time at 600x
    async with ingest_setup(db, config=config) as (server, ingestor):
        async with running(ingestor):
            await eventually(
                lambda: ingestor.counters.renewals,
                "two planned renewals",
                timeout_s=60,
                until=lambda renewals: renewals >= 2,
            )
            target = server.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await until_stored(ingestor, target)
        times = await stored_open_times(db, "BTCUSDT")
    assert gaps_in(times) == [] and len(times) == len(set(times))
    assert ingestor.counters.reconnects == 0, "a planned renewal is not a failure"


async def test_a_bad_quote_is_refused_and_the_pair_streams_on(db: Database) -> None:
    """A quote the schema would refuse (a negative size) is counted and dropped; the actor lives on."""
    from sqlalchemy import text

    from cryptocast.actors.streamhub import StreamHub
    from cryptocast.exchange.binance import BookQuote

    bad = BookQuote("BTCUSDT", 100.0, -1.0, 100.5, 2.0)
    async with ingest_setup(db, speed=300.0) as (_server, ingestor):
        hub = ingestor.streams.source
        assert isinstance(hub, StreamHub)
        async with running(ingestor):
            await until_live(ingestor)
            for _ in range(100):  # a closing minute takes the last quote seen: 2 s of them, ~10 closes
                await hub.route(bad)  # as if the connection had carried it
                await asyncio.sleep(0.02)
            marked = ingestor.last_stored
            await until_stored(ingestor, marked + 5 * MINUTE_MS)
        async with db.connect() as conn:
            books, negative = (
                await conn.execute(
                    text("SELECT count(*), count(*) FILTER (WHERE bid_qty < 0) FROM top_of_book")
                )
            ).one()
        times = await stored_open_times(db, "BTCUSDT")
    assert ingestor.counters.quotes_refused >= 1
    assert books > 0 and negative == 0, "good quotes land, the bad one does not"
    assert gaps_in(times) == [] and len(times) == len(set(times))
