"""Ray actors of the ingest side: one :class:`PairActor` per pair and the shared :class:`BudgetActor`.

Pair actors are detached and named (``pair:BTCUSDT``) so that a restarted supervisor finds them
again; they hold no state the database does not also hold, so killing one at any moment loses
nothing: its replacement resumes from the last stored minute.
"""

from __future__ import annotations

import asyncio
import logging
import time

import ray
from sqlalchemy import update

from cryptocast.actors.budget import RateBudget
from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.logs import setup_worker_logging
from cryptocast.sql.database import Database
from cryptocast.sql.schema import symbols
from cryptocast.sql.urlfile import read_url

NAMESPACE = "cryptocast"
BUDGET_NAME = "rate_budget"
PAIR_PREFIX = "pair:"
# 20 pairs, the supervisor, the budget, Serve and a Tune trial share 2 cores: ingest actors are
# I/O-bound and reserve a sliver each.
PAIR_CPUS = 0.02
BUDGET_CPUS = 0.01
STOP_TIMEOUT_S = 20.0

log = logging.getLogger(__name__)


def pair_actor_name(symbol: str) -> str:
    return PAIR_PREFIX + symbol.upper()


@ray.remote(num_cpus=BUDGET_CPUS, max_restarts=-1)
class BudgetActor:
    """The IP-wide REST weight and connection budget (see :class:`RateBudget`)."""

    def __init__(self, weight_limit: int) -> None:
        self.budget = RateBudget(weight_limit=weight_limit)

    def reserve(self, weight: int) -> float:
        return self.budget.reserve(weight)

    def observe(self, used_weight: int | None) -> None:
        self.budget.observe(used_weight)

    def penalize(self, retry_after_s: float) -> None:
        self.budget.penalize(retry_after_s)

    def reserve_connection(self) -> float:
        return self.budget.reserve_connection()

    def snapshot(self) -> dict:
        return self.budget.snapshot()


class RayBudget:
    """The ingestor's view of the budget actor."""

    def __init__(self, handle: ray.actor.ActorHandle) -> None:
        self.handle = handle

    async def reserve(self, weight: int) -> float:
        return await self.handle.reserve.remote(weight)

    async def observe(self, used_weight: int | None) -> None:
        if used_weight is not None:
            self.handle.observe.remote(used_weight)  # fire and forget: it only raises the count

    async def penalize(self, retry_after_s: float) -> None:
        await self.handle.penalize.remote(retry_after_s)

    async def reserve_connection(self) -> float:
        return await self.handle.reserve_connection.remote()


def budget_actor(weight_limit: int = 6000) -> ray.actor.ActorHandle:
    return BudgetActor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=BUDGET_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(weight_limit)


@ray.remote(num_cpus=PAIR_CPUS, max_restarts=0)
class PairActor:
    """Hosts one :class:`PairIngestor`; starts ingesting as soon as it is constructed."""

    def __init__(
        self, symbol: str, db_url_file: str | None, rest_url: str, stream_url: str, lookback_ms: int | None
    ) -> None:
        setup_worker_logging()
        self.symbol = symbol
        self.db_url = read_url(db_url_file)
        self.rest_url, self.stream_url = rest_url, stream_url
        self.config = IngestConfig(lookback_ms=lookback_ms)
        self.ingestor: PairIngestor | None = None
        self.error: str | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self._main())

    async def _main(self) -> None:
        db = Database(self.db_url, pool_size=2)
        exchange = BinanceExchange(rest_url=self.rest_url, stream_url=self.stream_url)
        try:
            budget = RayBudget(ray.get_actor(BUDGET_NAME, namespace=NAMESPACE))
            self.ingestor = PairIngestor(self.symbol, db, exchange, budget, self.config)
            await self.ingestor.run(self._stop)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("ingestion failed", extra={"pair": self.symbol})
            try:
                async with db.begin() as conn:
                    await conn.execute(
                        update(symbols)
                        .where(symbols.c.symbol == self.symbol)
                        .values(last_error=self.error[:2000])
                    )
            except DB_ERRORS:
                pass
        finally:
            await exchange.close_connection()
            await db.dispose()

    async def status(self) -> dict:
        base = self.ingestor.status() if self.ingestor else {"symbol": self.symbol, "state": "starting"}
        heartbeat = base.get("heartbeat") or self.started
        return {**base, "heartbeat": heartbeat, "finished": self._task.done(), "error": self.error}

    async def stop(self) -> None:
        """Graceful: flush held candles, close sockets, leave the ledger consistent."""
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
