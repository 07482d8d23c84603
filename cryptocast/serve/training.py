"""What the API says about training: commands as JSON, and a pair's training at a glance.

Every value here is read, never computed again: the next slot is the training scheduler's own plan
(``training_schedule``), progress and outcomes are its command rows, and whether anything will act
on a queued command is its heartbeat (``services``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.schema import training_schedule


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def scheduler_view(db: Database) -> dict:
    """Whether a training scheduler is alive, from its heartbeat."""
    beat = await command_queue.service(db, command_queue.SCHEDULER_SERVICE)
    alive = command_queue.is_alive(beat)
    return {
        "running": alive,
        "heartbeat_at": _iso(beat["heartbeat_at"]) if beat else None,
        "started_at": _iso(beat["started_at"]) if beat else None,
        "message": None
        if alive
        else "no training scheduler is running: queued trainings wait until one starts "
        "(cryptocast up, or cryptocast serve apply on a cluster)",
    }


def _unplanned(status: str) -> str:
    if status == "live":
        return "not planned yet: the training scheduler plans a live pair within seconds of its start"
    return f"no training while the pair is {status}"


async def pair_training(db: Database, symbol_id: int, symbol: str, status: str) -> dict:
    """The last training, the one in progress or queued, the next slot and what history allows."""
    async with db.connect() as conn:
        planned = (
            await conn.execute(select(training_schedule).where(training_schedule.c.symbol_id == symbol_id))
        ).first()
    plan = dict(planned._mapping) if planned is not None and status == "live" else None
    last = await command_queue.last_finished_training(db, symbol)
    current = await command_queue.open_training(db, symbol)
    return {
        "last": command_queue.view(last) if last else None,
        "current": command_queue.view(current) if current else None,
        "next": {"at": _iso(plan["next_at"]), "kind": plan["next_kind"]}
        if plan and plan["next_at"]
        else None,
        "history_days": round(plan["history_days"], 2) if plan and plan["history_days"] is not None else None,
        "needs_days": round(plan["needs_days"], 2) if plan and plan["needs_days"] is not None else None,
        "note": plan["note"] if plan else _unplanned(status),
        "scheduler": await scheduler_view(db),
    }
