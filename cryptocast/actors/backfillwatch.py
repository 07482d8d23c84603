"""Following a pair's backfill from outside the running system, through the database alone.

``cryptocast pairs add --wait`` runs in another process than the ingest actor that backfills the
pair: all it can see is the pair's row (status and the minutes stored against the span to fetch,
which the actor writes as it goes) and the command row that asked for the pair. Reading both every
second is enough to draw a progress bar and to tell done from failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.schema import symbols

POLL_EVERY_S = 1.0
DONE = "live"
STOPPED = ("error", "halted", "removed")


@dataclass(frozen=True, slots=True)
class BackfillState:
    """Where a pair's backfill stands: its status (None before the pair has a row) and minutes done of total."""

    status: str | None
    done: int
    total: int
    last_error: str | None


class BackfillFailed(RuntimeError):
    """The command was refused or failed, or the pair stopped before it went live; the message says why."""


async def backfill_state(db: Database, symbol: str) -> BackfillState:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(
                    symbols.c.status, symbols.c.backfill_done, symbols.c.backfill_total, symbols.c.last_error
                ).where(symbols.c.symbol == symbol)
            )
        ).first()
    if row is None:
        return BackfillState(None, 0, 0, None)
    return BackfillState(row.status, row.backfill_done, row.backfill_total, row.last_error)


async def follow_backfill(
    db: Database,
    symbol: str,
    command_id: int,
    timeout_s: float,
    on_state: Callable[[BackfillState], None],
    every_s: float = POLL_EVERY_S,
) -> BackfillState:
    """Report the pair's state to ``on_state`` every ``every_s`` until it is live, and return that state.

    Raises :class:`BackfillFailed` when the command fails or the pair stops, :class:`TimeoutError`
    after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        command = await command_queue.get(db, command_id)
        if command is not None and command["status"] == "failed":
            raise BackfillFailed(f"command {command_id} failed: {command['error'] or 'no reason given'}")
        state = await backfill_state(db, symbol)
        on_state(state)
        if state.status == DONE:
            return state
        carried_out = command is not None and command["status"] == "done"
        if carried_out and state.status in STOPPED:  # before that, the status may be a previous run's
            raise BackfillFailed(f"{symbol} is {state.status}: {state.last_error or 'no reason given'}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{symbol} is {state.status or 'not added yet'} after {timeout_s:g} s "
                f"({state.done:,} of {state.total:,} minutes); is the system running (cryptocast up)?"
            )
        await asyncio.sleep(every_s)
