"""What every benchmark stands on: scratch databases, the replay in its own process, machine figures.

The benchmarks measure the product under conditions they set up themselves, and these helpers keep
those conditions honest and harmless:

* :func:`scratch_database`: a fresh, migrated database created for one run and dropped after it, so
  a benchmark never touches real data and always starts from the same empty schema;
* :func:`replay_process`: the replay exchange in a child process, as a remote exchange would be, so
  its CPU time does not count against the event loop being measured;
* :func:`machine`, :func:`cpu_seconds`, :func:`database_server`, :func:`server_cpu`: the CPUs and
  load average (a shared machine slows every number) and the CPU time of each side of a run;
* :func:`until`: polling for a state with a deadline, so a stuck run fails instead of hanging;
* :func:`free_port` and :func:`python_path`: loopback ports, and the repository root for processes
  (Ray workers, driver subprocesses) that import ``bench.lib`` outside the benchmark's own process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from sqlalchemy import select
from sqlalchemy.engine import URL

from cryptocast import heap
from cryptocast.exchange.clock import ReplayClock
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.settings import LOOPBACK
from cryptocast.sql import migrate
from cryptocast.sql.database import Database, async_url
from cryptocast.sql.schema import symbols

REPO_ROOT = Path(__file__).resolve().parents[2]  # the directory ``bench`` is imported from
REPLAY_START_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 60.0
POLL_S = 0.2  # how often :func:`until` asks again


def machine() -> dict:
    """CPUs and load average (1, 5, 15 min): the machine may be shared, which slows every number."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def database_server(url: URL) -> psutil.Process | None:
    """The PostgreSQL postmaster behind ``url`` when it runs on this machine and may be inspected."""
    conn = await asyncpg.connect(dsn(url))
    try:  # while the backend lives: it exits with the connection
        return psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    except psutil.Error:
        return None
    finally:
        await conn.close()


def server_cpu(postmaster: psutil.Process | None) -> dict[int, float]:
    """CPU seconds of each of the server's processes (backends, writers, autovacuum) by pid."""
    if postmaster is None:
        return {}
    cpu = {}
    for child in [postmaster, *postmaster.children()]:
        try:
            cpu[child.pid] = cpu_seconds(child)
        except psutil.Error:
            continue
    return cpu


# --- scratch database -------------------------------------------------------------------------------
def dsn(url: URL) -> str:
    """``url`` as a plain libpq DSN (password included) for asyncpg's own connections."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: URL, statement: str) -> None:
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(server_url: URL | str, name: str) -> AsyncIterator[URL]:
    """A fresh, migrated database ``name`` on the server of ``server_url``, dropped afterwards."""
    admin = async_url(server_url)
    await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await _admin(admin, f"CREATE DATABASE {name}")
    url = admin.set(database=name)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
    finally:
        await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def statuses(db: Database) -> dict[str, str]:
    """Every pair's status (``live``, ``backfilling``, ``paused``, ...) by symbol."""
    async with db.connect() as conn:
        return dict((await conn.execute(select(symbols.c.symbol, symbols.c.status))).all())


# --- the replay in its own process -----------------------------------------------------------------
@dataclass(frozen=True)
class Replay:
    rest_url: str
    stream_url: str
    clock: ReplayClock
    bars: dict[str, int]  # symbol -> recorded minutes (all of them history once the recording ended)
    pid: int


def _serve(config: ReplayConfig, ready: multiprocessing.Queue) -> None:
    async def main() -> None:
        async with ReplayServer(config) as server:
            c = server.clock
            bars = {name: len(sym.recording) for name, sym in server.market.symbols.items()}
            heap.settle()  # as the replay's own process does (cryptocast/exchange/cli.py)
            ready.put(
                (server.rest_url, server.stream_url, c.wall_start_ms, c.exchange_start_ms, c.speed, bars)
            )
            await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def replay_process(config: ReplayConfig) -> Iterator[Replay]:
    """Start the replay exchange in a child process (callers need a ``__main__`` guard); stop it after."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold Ray's threads
    ready = context.Queue()
    process = context.Process(target=_serve, args=(config, ready), daemon=True)
    process.start()
    try:
        rest, stream, wall_start, exchange_start, speed, bars = ready.get(timeout=REPLAY_START_TIMEOUT_S)
        yield Replay(rest, stream, ReplayClock(wall_start, exchange_start, speed), bars, process.pid)
    finally:
        process.terminate()
        process.join(10)


# --- polling, ports, paths ---------------------------------------------------------------------------
async def until(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str, poll_s: float = POLL_S
) -> None:
    """Wait until ``predicate`` holds; raises ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark stuck: {what} not reached in {timeout_s:.0f} s")
        await asyncio.sleep(poll_s)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def python_path() -> str:
    """``PYTHONPATH`` for a process that must import ``bench.lib``: the repository root first."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(REPO_ROOT), inherited] if inherited else [str(REPO_ROOT)])
