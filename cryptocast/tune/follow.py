"""``cryptocast train --pair X [--wait]`` against a running system: queue a retrain, then follow it.

The CLI does what the API does: it writes a command row, and the training scheduler of whatever
system runs on this database carries it out. Following reads that row until it ends; if no
scheduler is alive to run it, the CLI says so and stops waiting instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import time

from cryptocast.actors.commands import PairRejected, normalise_symbol
from cryptocast.cliutil import console, fail
from cryptocast.exitcodes import USAGE
from cryptocast.sql import command_queue
from cryptocast.sql.cli import describe_outcome, describe_progress
from cryptocast.sql.database import Database
from cryptocast.sql.queries import list_symbols

POLL_S = 1.0
QUIET_S = 5.0  # repeat an unchanged progress line at most this often


async def queue_retrain(db: Database, pair: str) -> int:
    """Queue a retrain of ``pair`` (or find the one already open); returns the command id."""
    try:
        symbol = normalise_symbol(pair)
    except PairRejected as exc:
        raise fail(str(exc), USAGE) from None
    row = next((r for r in await list_symbols(db) if r["symbol"] == symbol), None)
    if row is None or row["status"] == "removed":
        raise fail(f"{symbol} is not tracked (add it with: cryptocast pairs add {symbol})", USAGE)
    if row["status"] != "live":
        raise fail(
            f"{symbol} is {row['status']}: it can be retrained once its backfill is done and it is live"
        )
    command = await command_queue.submit_training(
        db, "retrain", symbol, "request", "requested with cryptocast train"
    )
    if command is None:
        current = await command_queue.open_training(db, symbol)
        if current is None:  # it ended between the two reads: ask again
            return await queue_retrain(db, pair)
        command = current["id"]
        console.print(f"a {current['kind']} of {symbol} is already {current['status']}: command {command}")
    else:
        console.print(f"retrain of {symbol} queued as command {command} (cryptocast commands show {command})")
    if not command_queue.is_alive(await command_queue.service(db, command_queue.SCHEDULER_SERVICE)):
        console.print(
            "[yellow]no training scheduler is running:[/] the command waits until the system runs (make run)"
        )
    return command


async def follow(db: Database, command_id: int, timeout_s: float) -> int:
    """Print the command's progress until it ends; the exit code: 0 done, 1 failed or given up."""
    deadline = time.monotonic() + timeout_s
    shown, shown_at = "", 0.0
    while time.monotonic() < deadline:
        row = await command_queue.get(db, command_id)
        if row is None:
            raise LookupError(f"command {command_id} does not exist")
        view = command_queue.view(row)
        if view["status"] == "done":
            console.print(f"command {command_id} done in {view['seconds']:.0f} s: {describe_outcome(view)}")
            for decision in view["result"].get("gate") or []:
                console.print(f"  {decision['reason']}")
            return 0
        if view["status"] == "failed":
            console.print(f"[red]command {command_id} failed:[/] {view['error']}")
            return 1
        beat = await command_queue.service(db, command_queue.SCHEDULER_SERVICE)
        if view["status"] == "pending" and not command_queue.is_alive(beat):
            console.print(
                f"[red]no training scheduler is running[/]: command {command_id} stays queued until one starts"
            )
            return 1
        progress = view["progress"] or {}
        step = f"{view['status']} {progress.get('phase')} {progress.get('trial')}"  # what a new line is worth
        if step != shown or time.monotonic() - shown_at > QUIET_S:
            detail = f": {describe_progress(progress)}" if progress else ""
            console.print(f"command {command_id} {view['status']}{detail}")
            shown, shown_at = step, time.monotonic()
        await asyncio.sleep(POLL_S)
    console.print(
        f"[red]gave up waiting[/] after {timeout_s:.0f} s; command {command_id} goes on (cryptocast commands show {command_id})"
    )
    return 1
