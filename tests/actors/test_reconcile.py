"""Socket candles checked against REST: a candle the exchange serves differently over REST is
stored as REST has it, by the check that runs once the close's burst is over."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import text

from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.actors.streamhub import Event, Sink, StreamHub
from cryptocast.exchange.binance import KlineUpdate
from cryptocast.records import Provenance
from cryptocast.sql.database import Database
from tests.actors.helpers import ingest_setup, running, until_live
from tests.helpers import eventually


class RevisingHub:
    """The pair's hub, with the volume of the first closed candle the pair will store from the socket
    doubled on its way: the exchange's REST answer for that minute then disagrees with what the
    socket said. Closes delivered while the pair backfills are left alone: backfill may store
    their minute first, and the socket's copy is then dropped as already stored."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub
        self.revised: int | None = None  # the minute whose socket candle was changed
        self.pair: PairIngestor | None = None  # the pair it delivers to, set once made

    async def add(self, symbol: str, sink: Sink) -> None:
        async def revising(name: str, events: list[Event]) -> None:
            await sink(name, [self._revise(e) for e in events])

        await self.hub.add(symbol, revising)

    def _revise(self, event: Event) -> Event:
        if self.revised is not None or not isinstance(event, KlineUpdate) or not event.closed:
            return event
        if self.pair is None or self.pair.state != "live":
            return event
        if self.pair.last_stored is not None and event.candle.open_time <= self.pair.last_stored:
            return event
        self.revised = event.candle.open_time
        return replace(event, candle=replace(event.candle, volume=2 * event.candle.volume))

    async def remove(self, symbol: str) -> None:
        await self.hub.remove(symbol)

    async def carries(self, symbol: str) -> bool:
        return await self.hub.carries(symbol)


async def _stored(db: Database, minute_ms: int) -> tuple[float, str]:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT volume, provenance FROM price_history "
                    "WHERE open_time = to_timestamp(:ms / 1000.0)"
                ),
                {"ms": minute_ms},
            )
        ).one()
    return row.volume, row.provenance


async def test_a_socket_candle_rest_disagrees_with_is_stored_as_rest_has_it(db: Database) -> None:
    async with ingest_setup(db) as (_server, first):
        hub = RevisingHub(StreamHub(first.exchange, first.budget))
        ingestor = PairIngestor(
            first.symbol,
            db,
            first.exchange,
            first.budget,
            IngestConfig(lookback_ms=None, reconcile_every=1),
            streams=hub,
        )
        hub.pair = ingestor
        async with running(ingestor):
            await until_live(ingestor)
            await eventually(
                lambda: ingestor.counters.reconciled_mismatches, "the mismatch found", until=bool
            )
            assert hub.revised is not None
            rest = {c.open_time: c for c in await ingestor.rest.page(hub.revised, hub.revised)}
        await hub.hub.close()
        volume, provenance = await _stored(db, hub.revised)
    assert ingestor.counters.reconciled_mismatches == 1
    assert volume == rest[hub.revised].volume
    assert provenance == Provenance.REPAIR.value
