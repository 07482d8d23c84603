"""The Ray actor that owns pairs: a :class:`PairActor` hosts the ingestion of up to 50 pairs.

Each tracked pair is owned by exactly one host, chosen by the supervisor, which runs one
:class:`PairIngestor` per pair on its event loop with one database pool and one REST client. A
Ray worker process holds about 50 MB of its own memory before it does any work, so one process
per pair would cost 1,600 × that for every Binance pair; a host's pairs share it. A pair that
fails is restarted inside its host, and a host that dies is restarted by the supervisor with its
pairs; neither holds state the database does not also hold, so killing either at any moment loses
nothing: each pair resumes from its last stored minute. A host's pairs stream through its node's
stream actor (``stream_actor.py``) and pay for REST from its node's budget (``budget_actor.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import ray
from sqlalchemy import update

from cryptocast import heap
from cryptocast.actors.budget_actor import RayBudget, node_budget
from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.actors.paircontext import PairContext
from cryptocast.actors.rest_budgeted import TIME_WEIGHT, budgeted
from cryptocast.actors.stream_actor import RemoteHub, node_stream_actor
from cryptocast.actors.streamhub import CONNECTION_LIFETIME_MS, Event
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.exchangeclock import ExchangeClock, server_time
from cryptocast.logs import setup_worker_logging
from cryptocast.sql.database import Database
from cryptocast.sql.schema import symbols
from cryptocast.sql.urlfile import read_url
from cryptocast.sql.writer import CandleWriter

PAIRS_PER_ACTOR = 50
# Ingestion is I/O-bound: a host reserves a sliver of a CPU, so pairs, the supervisor, Serve and a
# Tune trial share 2 cores.
PAIR_ACTOR_CPUS = 0.05
DB_POOL = 5  # connections per host (as many again on overflow), shared by its pairs
STOP_TIMEOUT_S = 20.0
FIRST_REFINE_S = 1.0  # wall seconds from measuring the shared exchange clock to its first refinement
CLOCK_REFINE_S = 15.0  # ... and the most between two later ones

log = logging.getLogger(__name__)


@dataclass
class Hosted:
    """One pair in its host: the ingestor, the task running it, and how it ended."""

    ingestor: PairIngestor
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.time)
    task: asyncio.Task | None = None
    error: str | None = None

    def status(self) -> dict:
        base = self.ingestor.status()
        finished = self.task is None or self.task.done()
        return {
            **base,
            "heartbeat": max(base["heartbeat"], self.started),
            "finished": finished,
            "error": self.error,
        }


@ray.remote(num_cpus=PAIR_ACTOR_CPUS, max_restarts=0)
class PairActor:
    """Hosts the ingestion of the pairs the supervisor gives it; each starts as soon as it is added."""

    def __init__(
        self,
        db_url_file: str | None,
        rest_url: str,
        stream_url: str,
        lookback_ms: int | None,
        stream_index: int,
        weight_limit: int,
        connection_lifetime_ms: int = CONNECTION_LIFETIME_MS,
    ) -> None:
        setup_worker_logging()
        node = ray.get_runtime_context().get_node_id()
        # Ingestion resumes from what is stored, so it need not wait for each commit's disk flush,
        # and holds its writes through a failed statement, so it need not ping before each one.
        self.db = Database(read_url(db_url_file), pool_size=DB_POOL, synchronous_commit=False, pre_ping=False)
        self.writer = CandleWriter(self.db)  # one for every hosted pair: a minute's candles share a commit
        self.exchange = BinanceExchange(rest_url=rest_url, stream_url=stream_url)
        self.budget = RayBudget(node_budget(node, weight_limit))
        streams = node_stream_actor(
            node, stream_index, rest_url, stream_url, weight_limit, connection_lifetime_ms
        )
        self.hub = RemoteHub(streams, ray.get_runtime_context().current_actor)
        self.lookback_ms = lookback_ms
        self.pairs: dict[str, Hosted] = {}
        self.clock: ExchangeClock | None = None  # one exchange clock for every hosted pair
        self._clock_ready = asyncio.Lock()
        self._refiner: asyncio.Task | None = None
        heap.settle()  # what the process made to start lives as long as it does

    async def _shared_clock(self, ctx: PairContext) -> ExchangeClock:
        """Measured once, at the first pair (``ctx``, whose calls these count as), then refined for
        all of them (``exchangeclock.py``), every ask under the node's budget (``budgeted``)."""
        async with self._clock_ready:
            if self.clock is None:
                clock = ExchangeClock(server_time(self.exchange))
                self.clock = await budgeted(
                    self.budget, self.exchange, 2 * TIME_WEIGHT, clock.measure, ctx=ctx
                )
                self._refiner = asyncio.get_running_loop().create_task(self._refine(self.clock))
            return self.clock

    async def _refine(self, clock: ExchangeClock) -> None:
        """Soon after the first measurement, then less often: the rate's span doubles each time."""
        every = FIRST_REFINE_S
        while True:
            await asyncio.sleep(every)
            every = min(2 * every, CLOCK_REFINE_S)
            try:
                await budgeted(self.budget, self.exchange, TIME_WEIGHT, clock.refine)
            except Exception as exc:  # the next refinement tries again; the rate stays as it was
                log.warning("could not refine the exchange clock: %s", exc)

    # --- the pairs ----------------------------------------------------------------------------------
    async def add(self, symbol: str) -> None:
        if symbol not in self.pairs:
            self._start(symbol)

    async def restart(self, symbol: str) -> None:
        """End the pair's ingestion (whatever its state) and start it afresh from its last stored minute."""
        await self._end(symbol)
        self._start(symbol)

    async def remove(self, symbol: str) -> None:
        """Graceful: flush held candles, leave the stream hub, keep the ledger consistent."""
        await self._end(symbol)

    def _start(self, symbol: str) -> None:
        config = IngestConfig(lookback_ms=self.lookback_ms)
        hosted = Hosted(
            PairIngestor(
                symbol,
                self.db,
                self.exchange,
                self.budget,
                config,
                streams=self.hub,
                clock=self._shared_clock,
                writer=self.writer,
            )
        )
        hosted.task = asyncio.get_running_loop().create_task(self._run(hosted))
        self.pairs[symbol] = hosted

    async def _run(self, hosted: Hosted) -> None:
        symbol = hosted.ingestor.symbol
        try:
            await hosted.ingestor.run(hosted.stop)
        except Exception as exc:
            hosted.error = f"{type(exc).__name__}: {exc}"
            log.exception("ingestion failed", extra={"pair": symbol})
            with contextlib.suppress(*DB_ERRORS):
                async with self.db.begin() as conn:
                    await conn.execute(
                        update(symbols)
                        .where(symbols.c.symbol == symbol)
                        .values(last_error=hosted.error[:2000])
                    )

    async def _end(self, symbol: str) -> None:
        hosted = self.pairs.pop(symbol, None)
        if hosted is None or hosted.task is None:
            return
        hosted.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(hosted.task), STOP_TIMEOUT_S)
        except TimeoutError:
            hosted.task.cancel()

    # --- calls from the stream actor and the supervisor ---------------------------------------------
    async def deliver_many(self, batch: list[tuple[str, list[Event]]]) -> None:
        """Closed candles (and their quotes) of this host's pairs, from the stream actor."""
        for symbol, events in batch:
            await self.hub.deliver(symbol, events)

    async def status(self) -> dict:
        """Each hosted pair's state, heartbeat, counters and how it ended, if it did."""
        return {symbol: hosted.status() for symbol, hosted in self.pairs.items()}

    async def stop(self) -> None:
        """Stop every pair gracefully, then release the database and the exchange client."""
        await asyncio.gather(*(self._end(symbol) for symbol in list(self.pairs)))
        if self._refiner is not None:
            self._refiner.cancel()
        await self.exchange.close_connection()
        await self.db.dispose()
