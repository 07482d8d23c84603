"""The supervisor: keeps one healthy :class:`PairActor` per tracked pair.

It reconciles the ``symbols`` table with the running actors (start new pairs, stop removed or
paused ones), carries out pair commands, notices dead actors (Ray reports the death) and hung ones
(no heartbeat), and restarts them with exponential back-off, recording restarts and the last error
on the pair. It is detached and restarted by Ray if it dies; it keeps nothing the database and
Ray's named actors cannot tell it again, so a restarted supervisor rebuilds its view from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from sqlalchemy import select, update

from cryptocast.actors import commands
from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.pair import NAMESPACE, PairActor, budget_actor, pair_actor_name
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.logs import setup_worker_logging
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.schema import COMMANDS_CHANNEL, symbols
from cryptocast.sql.urlfile import read_url, write_url

if TYPE_CHECKING:
    import asyncpg

SUPERVISOR_NAME = "supervisor"
SUPERVISOR_CPUS = 0.02
TICK_S = 1.0
STATUS_TIMEOUT_S = 10.0
HUNG_AFTER_S = 60.0  # wall seconds without a heartbeat: the actor is stuck
# A new actor's process may take this long to start when many start at once on 2 cores; until
# then an unanswered status call means "still starting", not "hung" (a death is still a death).
STARTUP_GRACE_S = 180.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
HEALTHY_RESET_S = 10.0  # an actor healthy this long resets its back-off
RUNNING_STATES = ("new", "backfilling", "live", "halted", "error")

log = logging.getLogger(__name__)


@dataclass
class Tracked:
    handle: ray.actor.ActorHandle
    started: float


@ray.remote(num_cpus=SUPERVISOR_CPUS, max_restarts=-1, max_task_retries=-1)
class Supervisor:
    def __init__(
        self,
        db_url_file: str | None,
        rest_url: str,
        stream_url: str,
        lookback_ms: int | None,
        weight_limit: int,
    ) -> None:
        setup_worker_logging()
        self.db_url_file, self.db_url = db_url_file, read_url(db_url_file)
        self.rest_url, self.stream_url = rest_url, stream_url
        self.lookback_ms = lookback_ms
        self.weight_limit = weight_limit
        self.tracked: dict[str, Tracked] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # symbol -> (consecutive failures, not before)
        self.last_status: dict[str, dict] = {}
        self.restarts_total = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self.db = Database(self.db_url, pool_size=3)
        self.exchange = BinanceExchange(rest_url=self.rest_url, stream_url=self.stream_url)
        self._task = asyncio.get_event_loop().create_task(self._run())

    # --- main loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        budget_actor(self.weight_limit)
        listener = None
        while not self._stopping:
            try:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                await self._commands()
                await self._reconcile()
            except DB_ERRORS as exc:
                log.warning("database unavailable: %s", exc)
                listener = None
            except Exception:
                log.exception("supervisor tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()

    async def _listen(self) -> asyncpg.Connection:
        import asyncpg

        from cryptocast.sql.database import async_url

        url = async_url(self.db_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(url)
        await conn.add_listener(COMMANDS_CHANNEL, lambda *_: self._wake.set())
        return conn

    async def _commands(self) -> None:
        for command in await commands.claim_pending(self.db):
            try:
                result = await commands.apply(self.db, self.exchange, command)
                await command_queue.finish(self.db, command["id"], result=result)
                log.info("%s %s done", command["kind"], command["symbol"])
            except commands.PairRejected as exc:
                await command_queue.finish(self.db, command["id"], error=str(exc))
                log.warning("%s %s refused: %s", command["kind"], command["symbol"], exc)

    async def _reconcile(self) -> None:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(symbols.c.symbol, symbols.c.status))).all()
        wanted = {symbol for symbol, status in rows if status in RUNNING_STATES}
        for symbol in sorted(set(self.tracked) - wanted):
            await self._stop_pair(symbol)
        await asyncio.gather(*(self._ensure(symbol) for symbol in sorted(wanted)))

    async def _ensure(self, symbol: str) -> None:
        now = time.time()
        tracked = self.tracked.get(symbol)
        if tracked is None:
            handle = self._existing(symbol)  # a restarted supervisor adopts the running actor
            if handle is None:
                _, not_before = self.failures.get(symbol, (0, 0.0))
                if now < not_before:
                    return
                handle = self._spawn(symbol)
            self.tracked[symbol] = Tracked(handle, now)
            return
        problem = await self._health(symbol, tracked)
        if problem is None:
            # Back-off is for crash loops: an actor that got back to live (or ran a while) starts afresh.
            if (
                self.last_status.get(symbol, {}).get("state") == "live"
                or now - tracked.started > HEALTHY_RESET_S
            ):
                self.failures.pop(symbol, None)
            return
        await self._restart(symbol, tracked, problem)

    async def _health(self, symbol: str, tracked: Tracked) -> str | None:
        try:
            status: dict = await asyncio.wait_for(tracked.handle.status.remote(), STATUS_TIMEOUT_S)
        except RayActorError as exc:
            return f"actor died: {str(exc).splitlines()[0]}"
        except (TimeoutError, GetTimeoutError):
            if time.time() - tracked.started < STARTUP_GRACE_S:
                return None
            return f"no answer within {STATUS_TIMEOUT_S:.0f} s"
        self.last_status[symbol] = status
        if status["finished"]:
            return status["error"] or "ingestion ended"
        if (
            time.time() - status["heartbeat"] > HUNG_AFTER_S
            and time.time() - tracked.started > STARTUP_GRACE_S
        ):
            return f"hung: no heartbeat for {time.time() - status['heartbeat']:.0f} s"
        return None

    def _existing(self, symbol: str) -> ray.actor.ActorHandle | None:
        try:
            return ray.get_actor(pair_actor_name(symbol), namespace=NAMESPACE)
        except ValueError:
            return None

    def _spawn(self, symbol: str) -> ray.actor.ActorHandle:
        log.info("starting pair actor", extra={"pair": symbol})
        return PairActor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
            name=pair_actor_name(symbol), namespace=NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote(symbol, self.db_url_file, self.rest_url, self.stream_url, self.lookback_ms)

    async def _restart(self, symbol: str, tracked: Tracked, problem: str) -> None:
        failures, _ = self.failures.get(symbol, (0, 0.0))
        failures += 1
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
        self.failures[symbol] = (failures, time.time() + delay)
        self.restarts_total += 1
        log.warning("restarting in %.1f s: %s", delay, problem, extra={"pair": symbol})
        ray.kill(tracked.handle, no_restart=True)
        self.tracked.pop(symbol, None)
        async with self.db.begin() as conn:
            await conn.execute(
                update(symbols)
                .where(symbols.c.symbol == symbol)
                .values(restarts=symbols.c.restarts + 1, last_error=problem[:2000])
            )
        await self._wait_gone(symbol)

    async def _wait_gone(self, symbol: str) -> None:
        """A killed named actor keeps its name for a moment; a new one must not adopt the corpse."""
        for _ in range(50):
            if self._existing(symbol) is None:
                return
            await asyncio.sleep(0.1)

    async def _stop_pair(self, symbol: str) -> None:
        tracked = self.tracked.pop(symbol, None)
        if tracked is None:  # already stopped (shutdown and a reconcile can race for it)
            return
        log.info("stopping pair actor", extra={"pair": symbol})
        with contextlib.suppress(RayActorError, TimeoutError):
            await asyncio.wait_for(tracked.handle.stop.remote(), 30)
        ray.kill(tracked.handle, no_restart=True)
        await self._wait_gone(symbol)

    # --- public methods -----------------------------------------------------------------------------
    async def snapshot(self) -> dict:
        """Per pair: state, last candle, lag, backfill progress, restarts (from the database and actors)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(symbols))).mappings().all()
        pairs = {}
        for row in rows:
            live = self.last_status.get(row["symbol"], {})
            pairs[row["symbol"]] = {
                "status": row["status"],
                "running": row["symbol"] in self.tracked,
                "last_candle_time": row["last_candle_time"].isoformat() if row["last_candle_time"] else None,
                "lag_ms": live.get("lag_ms"),
                "backfill": {
                    "done": row["backfill_done"],
                    "total": row["backfill_total"],
                    "eta_s": row["backfill_eta_s"],
                },
                "restarts": row["restarts"],
                "last_error": row["last_error"],
            }
        return {"pairs": pairs, "restarts_total": self.restarts_total}

    def wake(self) -> None:
        self._wake.set()

    async def shutdown(self) -> None:
        """Stop every pair gracefully (flush, close sockets) and end the loop."""
        self._stopping = True
        self._wake.set()
        try:  # let the loop finish its tick, so nothing restarts a pair while we stop them
            await asyncio.wait_for(asyncio.shield(self._task), 30)
        except TimeoutError:
            self._task.cancel()
        for symbol in list(self.tracked):
            await self._stop_pair(symbol)
        await self.exchange.close_connection()


def start_supervisor(
    db_url: str, rest_url: str, stream_url: str, lookback_ms: int | None, weight_limit: int = 6000
) -> ray.actor.ActorHandle:
    """Start (or find) the supervisor; the URL reaches it, and its pair actors, as the path of its file."""
    return Supervisor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=SUPERVISOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(write_url(db_url), rest_url, stream_url, lookback_ms, weight_limit)
