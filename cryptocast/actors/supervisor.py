"""The supervisor: keeps every tracked pair owned by exactly one healthy pair host.

It reconciles the ``symbols`` table with the running hosts (place new pairs, remove deleted or
paused ones), carries out pair commands, notices dead hosts (Ray reports the death, or their node
is gone) and hung or failed pairs (no heartbeat, an ended ingestion), and restarts them with
exponential back-off, recording restarts and the last error on the pair. New pairs go to the
ingest node with the fewest pairs, into a host there with room (``PAIRS_PER_ACTOR``), so the pairs
of a dead node come back on the nodes that remain. It is detached and restarted by Ray if it dies;
it keeps nothing the database and Ray's named actors cannot tell it again, so a restarted supervisor
rebuilds its view from them. Commands, placement and health stay in this one module (a little over
350 lines) because every tick decides all three from one view of the hosts and the pairs they own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from sqlalchemy import select, update

from cryptocast.actors import commands
from cryptocast.actors.budget import WEIGHT_LIMIT_PER_MINUTE
from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.actors.nodes import (
    BUDGET_PREFIX,
    HOST_PREFIX,
    NAMESPACE,
    STREAM_PREFIX,
    host_name,
    ingest_nodes,
    named_actors,
    pinned,
)
from cryptocast.actors.pair import PAIRS_PER_ACTOR, PairActor
from cryptocast.actors.streamhub import CONNECTION_LIFETIME_MS, PAIRS_PER_CONNECTION
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
HUNG_AFTER_S = 60.0  # wall seconds without a heartbeat: the pair is stuck
# A new host's process may take this long to start when many start at once on 2 cores; until
# then an unanswered status call means "still starting", not "hung" (a death is still a death).
STARTUP_GRACE_S = 180.0
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 60.0
HEALTHY_RESET_S = 10.0  # a pair healthy this long resets its back-off
RUNNING_STATES = ("new", "backfilling", "live", "halted", "error")

log = logging.getLogger(__name__)


@dataclass
class Host:
    """A pair host as the supervisor tracks it: where it runs and which pairs it owns."""

    name: str
    node: str
    index: int
    handle: ray.actor.ActorHandle
    started: float = field(default_factory=time.time)
    pairs: dict[str, float] = field(default_factory=dict)  # symbol -> when it was (re)started there


def _host_index(name: str) -> tuple[str, int]:
    node, _, index = name.removeprefix(HOST_PREFIX).rpartition(":")
    return node, int(index)


@ray.remote(num_cpus=SUPERVISOR_CPUS, max_restarts=-1, max_task_retries=-1)
class Supervisor:
    def __init__(
        self,
        db_url_file: str | None,
        rest_url: str,
        stream_url: str,
        lookback_ms: int | None,
        weight_limit: int,
        pairs_per_actor: int = PAIRS_PER_ACTOR,
        connection_lifetime_ms: int = CONNECTION_LIFETIME_MS,
    ) -> None:
        setup_worker_logging()
        self.db_url_file, self.db_url = db_url_file, read_url(db_url_file)
        self.rest_url, self.stream_url = rest_url, stream_url
        self.lookback_ms = lookback_ms
        self.weight_limit = weight_limit
        self.pairs_per_actor = pairs_per_actor
        self.connection_lifetime_ms = connection_lifetime_ms
        self.hosts: dict[str, Host] = {}
        self.owner: dict[str, str] = {}  # symbol -> the name of the host that owns it
        self.failures: dict[str, tuple[int, float]] = {}  # symbol -> (consecutive failures, not before)
        self.last_status: dict[str, dict] = {}
        self.restarts_total = 0
        self._adopted = False
        self._wake = asyncio.Event()
        self._stopping = False
        self.db = Database(self.db_url, pool_size=3)
        self.exchange = BinanceExchange(rest_url=self.rest_url, stream_url=self.stream_url)
        self._task = asyncio.get_event_loop().create_task(self._run())

    # --- main loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        listener = None
        while not self._stopping:
            try:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                if not self._adopted:
                    await self._adopt()
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

    async def _adopt(self) -> None:
        """A restarted supervisor takes over the hosts that kept running, with the pairs they own."""
        for name in named_actors(HOST_PREFIX):
            node, index = _host_index(name)
            try:
                handle = ray.get_actor(name, namespace=NAMESPACE)
                owned: dict = await asyncio.wait_for(handle.status.remote(), STATUS_TIMEOUT_S)
            except (ValueError, RayActorError, TimeoutError, GetTimeoutError):
                continue
            host = self.hosts[name] = Host(name, node, index, handle)
            for symbol in owned:
                if symbol in self.owner:  # never two owners: the first host found keeps it
                    await handle.remove.remote(symbol)
                    continue
                self.owner[symbol] = name
                host.pairs[symbol] = time.time()
        self._adopted = True

    async def _reconcile(self) -> None:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(symbols.c.symbol, symbols.c.status))).all()
        wanted = {symbol for symbol, status in rows if status in RUNNING_STATES}
        for symbol in sorted(set(self.owner) - wanted):
            await self._remove(symbol)
        await asyncio.gather(*(self._check(host) for host in list(self.hosts.values())))
        now = time.time()
        for symbol in sorted(wanted - set(self.owner)):
            _, not_before = self.failures.get(symbol, (0, 0.0))
            if now >= not_before:
                await self._place(symbol)

    # --- placement ----------------------------------------------------------------------------------
    async def _place(self, symbol: str) -> None:
        nodes = ingest_nodes()
        if not nodes:
            log.warning("no node takes pairs yet", extra={"pair": symbol})
            return
        load = dict.fromkeys(nodes, 0)
        for host in self.hosts.values():
            if host.node in load:
                load[host.node] += len(host.pairs)
        node = min(nodes, key=lambda n: (load[n], n))
        host = next(
            (
                h
                for h in sorted(self.hosts.values(), key=lambda h: h.index)
                if h.node == node and len(h.pairs) < self.pairs_per_actor
            ),
            None,
        ) or self._spawn(node)
        log.info("starting pair in %s", host.name, extra={"pair": symbol})
        await host.handle.add.remote(symbol)
        host.pairs[symbol] = time.time()
        self.owner[symbol] = host.name

    def _spawn(self, node: str) -> Host:
        used = {h.index for h in self.hosts.values() if h.node == node}
        index = next(i for i in range(len(used) + 1) if i not in used)
        name = host_name(node, index)
        handle = PairActor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            scheduling_strategy=pinned(node),
        ).remote(
            self.db_url_file,
            self.rest_url,
            self.stream_url,
            self.lookback_ms,
            index // max(1, PAIRS_PER_CONNECTION // self.pairs_per_actor),  # hosts share a connection
            self.weight_limit,
            self.connection_lifetime_ms,
        )
        host = self.hosts[name] = Host(name, node, index, handle)
        return host

    # --- health -------------------------------------------------------------------------------------
    async def _check(self, host: Host) -> None:
        try:
            statuses: dict = await asyncio.wait_for(host.handle.status.remote(), STATUS_TIMEOUT_S)
        except RayActorError as exc:
            await self._lost(host, f"host died: {str(exc).splitlines()[0]}")
            return
        except (TimeoutError, GetTimeoutError):
            if time.time() - host.started >= STARTUP_GRACE_S:
                await self._lost(host, f"host gave no answer within {STATUS_TIMEOUT_S:.0f} s")
            return
        now = time.time()
        for symbol, started in list(host.pairs.items()):
            status = statuses.get(symbol)
            problem = self._problem(status, started, now)
            if problem is None:
                self.last_status[symbol] = status or {}
                if (status or {}).get("state") == "live" or now - started > HEALTHY_RESET_S:
                    self.failures.pop(symbol, None)  # back-off is for crash loops
                continue
            await self._record_restart(symbol, problem)
            await self._remove(symbol)  # placed again once its back-off has passed

    def _problem(self, status: dict | None, started: float, now: float) -> str | None:
        if status is None:
            return "the host lost the pair" if now - started > STATUS_TIMEOUT_S else None
        if status["finished"]:
            return status["error"] or "ingestion ended"
        if now - status["heartbeat"] > HUNG_AFTER_S and now - started > STARTUP_GRACE_S:
            return f"hung: no heartbeat for {now - status['heartbeat']:.0f} s"
        return None

    async def _lost(self, host: Host, problem: str) -> None:
        """A host died or hangs: kill it and place its pairs afresh (on another node if its own is gone)."""
        log.warning("restarting the pairs of %s: %s", host.name, problem)
        ray.kill(host.handle, no_restart=True)
        self.hosts.pop(host.name, None)
        for symbol in host.pairs:
            self.owner.pop(symbol, None)
            await self._record_restart(symbol, problem)
        await self._wait_gone(host.name)

    async def _record_restart(self, symbol: str, problem: str) -> None:
        failures, _ = self.failures.get(symbol, (0, 0.0))
        failures += 1
        delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (failures - 1))
        self.failures[symbol] = (failures, time.time() + delay)
        self.restarts_total += 1
        log.warning("restarting in %.1f s: %s", delay, problem, extra={"pair": symbol})
        async with self.db.begin() as conn:
            await conn.execute(
                update(symbols)
                .where(symbols.c.symbol == symbol)
                .values(restarts=symbols.c.restarts + 1, last_error=problem[:2000])
            )

    async def _wait_gone(self, name: str) -> None:
        """A killed named actor keeps its name for a moment; a new one must not adopt the corpse."""
        for _ in range(50):
            try:
                ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                return
            await asyncio.sleep(0.1)

    async def _remove(self, symbol: str) -> None:
        name = self.owner.pop(symbol, None)
        host = self.hosts.get(name) if name else None
        if host is None:
            return
        host.pairs.pop(symbol, None)
        log.info("stopping pair", extra={"pair": symbol})
        with contextlib.suppress(RayActorError, TimeoutError):
            await asyncio.wait_for(host.handle.remove.remote(symbol), 30)

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
                "running": row["symbol"] in self.owner,
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

    def placement(self) -> dict[str, str]:
        """Which host owns each running pair (symbol -> the host actor's name)."""
        return dict(self.owner)

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
        for host in list(self.hosts.values()):
            with contextlib.suppress(RayActorError, TimeoutError):
                await asyncio.wait_for(host.handle.stop.remote(), 60)
            ray.kill(host.handle, no_restart=True)
        self.hosts.clear()
        self.owner.clear()
        for name in [*named_actors(STREAM_PREFIX), *named_actors(BUDGET_PREFIX)]:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        await self.exchange.close_connection()


def start_supervisor(
    db_url: str,
    rest_url: str,
    stream_url: str,
    lookback_ms: int | None,
    weight_limit: int = WEIGHT_LIMIT_PER_MINUTE,
    pairs_per_actor: int = PAIRS_PER_ACTOR,
    connection_lifetime_ms: int = CONNECTION_LIFETIME_MS,
) -> ray.actor.ActorHandle:
    """Start (or find) the supervisor, on this node if it can; the URL reaches it, and its pair
    hosts, as the path of its file."""
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    return Supervisor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=SUPERVISOR_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=here,
    ).remote(
        write_url(db_url),
        rest_url,
        stream_url,
        lookback_ms,
        weight_limit,
        pairs_per_actor,
        connection_lifetime_ms,
    )
