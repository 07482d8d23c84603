"""What many test modules need, kept in one place: waiting for a condition with a deadline, a free
loopback port, a scratch database on a configured PostgreSQL server, and a running ``cryptocast up``.

Fixtures stay in the ``conftest.py`` files; they build on these.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
from sqlalchemy.engine import URL

from cryptocast.settings import LOOPBACK

T = TypeVar("T")

POLL_TIMEOUT_S = 30.0
POLL_EVERY_S = 0.1
SHOWN_CHARS = 2000  # of the last value seen, in a failure message


# --- waiting with a deadline --------------------------------------------------------------------------
def _not_reached(what: str, timeout_s: float, value: object) -> AssertionError:
    shown = repr(value)
    if len(shown) > SHOWN_CHARS:
        shown = shown[:SHOWN_CHARS] + " ..."
    return AssertionError(f"{what}: not reached within {timeout_s:g} s (last seen: {shown})")


def eventually_sync(
    check: Callable[[], T],
    what: str,
    *,
    timeout_s: float = POLL_TIMEOUT_S,
    every_s: float = POLL_EVERY_S,
    until: Callable[[T], object] = bool,
) -> T:
    """Call ``check`` every ``every_s`` until ``until`` holds for what it returns (by default: until
    it is truthy), and return that value; after ``timeout_s`` fail, naming ``what`` was awaited and
    the last value seen.

    Why: a test waits on another process (a server coming up, a command carried out) with nothing to
    be told by; one loop with one clear failure instead of a loop per module.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise _not_reached(what, timeout_s, value)
        time.sleep(every_s)


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    what: str,
    *,
    timeout_s: float = POLL_TIMEOUT_S,
    every_s: float = POLL_EVERY_S,
    until: Callable[[T], object] = bool,
) -> T:
    """:func:`eventually_sync` for async tests: ``check`` may return a value or an awaitable, and the
    event loop runs between calls (the task the test waits on may live on it).

    Why: as :func:`eventually_sync`, without blocking the loop.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise _not_reached(what, timeout_s, value)
        await asyncio.sleep(every_s)


# --- ports --------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on loopback right now.

    Why: a server the test starts in another process (or a URL where nothing must listen) needs a
    port known in advance; a fixed one would collide with another test run on the machine.
    """
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# --- scratch databases --------------------------------------------------------------------------------
_scratch_names = itertools.count()


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: URL, *statements: str) -> None:
    """Run ``statements`` one by one in autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(server: URL, prefix: str, *, template: str | None = None) -> AsyncIterator[URL]:
    """A new database on ``server`` (any URL of it: the statements run on its ``postgres`` database),
    empty or a copy of the database ``template``, and its URL; dropped, connections and all, on exit.

    Why: a test that writes gets a database nobody else sees, on whichever configured server it runs
    against, and leaves nothing behind. The name is unique to this process; one left by a crashed run
    of the same process id is dropped first.
    """
    maintenance = server.set(database="postgres")
    name = f"{prefix}_{os.getpid()}_{next(_scratch_names)}"
    copy = f" TEMPLATE {template}" if template else ""
    await _admin(maintenance, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}{copy}")
    try:
        yield maintenance.set(database=name)
    finally:
        await _admin(maintenance, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- a running ``cryptocast up`` ----------------------------------------------------------------------
CLI = [sys.executable, "-m", "cryptocast.cli"]
UP_STARTUP_TIMEOUT_S = 180.0
UP_STOP_TIMEOUT_S = 120.0
UP_READY = "press Ctrl-C"  # the last line ``up`` prints once everything runs


def cli_env(settings: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its ``CRYPTOCAST_*`` variables, plus ``settings``.

    Why: the command under test must read the settings the test gives it, not the developer's or CI's.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOCAST_")} | (settings or {})


@dataclass
class Up:
    """A ``cryptocast up`` started by :func:`running_up`."""

    process: subprocess.Popen[str]
    env: dict[str, str]  # its whole environment (``CRYPTOCAST_*`` settings included)
    output: str  # what it printed on its way up, its ready line included

    def interrupt(self, timeout_s: float = UP_STOP_TIMEOUT_S) -> str:
        """Ctrl-C, as a user stops it; waits for the process to end and returns what it printed meanwhile."""
        self.process.send_signal(signal.SIGINT)
        return self.process.communicate(timeout=timeout_s)[1]


@contextmanager
def running_up(
    workdir: Path, settings: dict[str, str], *, startup_timeout_s: float = UP_STARTUP_TIMEOUT_S
) -> Iterator[Up]:
    """``cryptocast up`` as a user runs it, a real process in ``workdir`` on the embedded defaults: its
    data under ``workdir/var``, free loopback ports for the replay, the API and the dashboard, and
    ``settings`` (``CRYPTOCAST_*`` variables) on top. Yielded once it says it is ready; killed on exit
    if the test did not stop it.

    Why: more than one module tests the whole command; each starts it the same way and must never
    leave it running.
    """
    env = cli_env(
        {
            "CRYPTOCAST_DATA_DIR": str(workdir / "var"),
            "CRYPTOCAST_REPLAY_PORT": str(free_port()),
            "CRYPTOCAST_API_PORT": str(free_port()),
            "CRYPTOCAST_DASHBOARD_PORT": str(free_port()),
        }
        | settings
    )
    process = subprocess.Popen([*CLI, "up"], env=env, cwd=workdir, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + startup_timeout_s
        while time.monotonic() < deadline:  # checked between lines: a silent hang ends in pytest's timeout
            line = process.stderr.readline()
            lines.append(line)
            if UP_READY in line or not line:
                break
        output = "".join(lines)
        assert UP_READY in lines[-1], (
            f"cryptocast up not ready within {startup_timeout_s:g} s (exit code {process.poll()}):\n{output}"
        )
        yield Up(process, env, output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
