"""Training commands as a queue: submitted, claimed, progressing, finished — and readable by anyone.

Every training is a row in ``commands`` (kind ``retrain`` or ``recalibrate``), whoever asked for it:
a user through the API, CLI or dashboard, the scheduler's daily slot, a new pair, live drift. So a
training's trigger, progress and outcome are read the same way, and a command id always names
something a consumer will act on. A partial unique index keeps at most one training open per pair;
with that, first-in first-out is already fair across pairs (no pair can queue a second one).
A consumer that dies mid-run leaves its row ``running``; :func:`recover_interrupted` puts it back
in the queue (or fails it once its attempts are used up) when the consumer starts again.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cryptocast.sql.database import Database
from cryptocast.sql.schema import OPEN_STATUSES, TRAINING_KINDS, commands, services

SCHEDULER_SERVICE = "training-scheduler"  # the training scheduler's row in ``services``
ALIVE_S = 30.0  # a heartbeat older than this: the service is not running
MAX_ATTEMPTS = 2  # an interrupted training is tried once more, then failed with the reason
LIST_LIMIT = 100
ONE_OPEN_TRAINING = text("kind IN ('retrain', 'recalibrate') AND status IN ('pending', 'running')")


def _row(row: Any) -> dict:
    return dict(row._mapping)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view(row: dict) -> dict:
    """A command as the API and the CLI show it (JSON-ready), with its duration once it has run."""
    started, finished = row["started_at"], row["finished_at"]
    payload = row["payload"] or {}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "symbol": row["symbol"],
        "status": row["status"],
        "trigger": payload.get("trigger"),
        "reason": payload.get("reason"),
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "seconds": round((finished - started).total_seconds(), 1) if started and finished else None,
        "attempts": row["attempts"],
        "progress": row["progress"] if row["status"] == "running" else None,
        "result": row["result"],
        "error": row["error"],
        "url": f"/commands/{row['id']}",
    }


async def submit_training(
    db: Database, kind: str, symbol: str, trigger: str, reason: str, **payload: Any
) -> int | None:
    """Queue a training of ``symbol``; None when one is already open for it (the unique index says so)."""
    async with db.begin() as conn:
        return (
            await conn.execute(
                pg_insert(commands)
                .values(kind=kind, symbol=symbol, payload={"trigger": trigger, "reason": reason} | payload)
                .on_conflict_do_nothing(index_elements=["exchange", "symbol"], index_where=ONE_OPEN_TRAINING)
                .returning(commands.c.id)
            )
        ).scalar()


async def open_training(db: Database, symbol: str) -> dict | None:
    """The pair's pending or running training, if any."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(commands).where(
                    commands.c.symbol == symbol,
                    commands.c.kind.in_(TRAINING_KINDS),
                    commands.c.status.in_(OPEN_STATUSES),
                )
            )
        ).first()
    return _row(row) if row is not None else None


async def get(db: Database, command_id: int) -> dict | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(commands).where(commands.c.id == command_id))).first()
    return _row(row) if row is not None else None


async def find(
    db: Database,
    symbol: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int = LIST_LIMIT,
) -> list[dict]:
    """Commands, newest first, filtered by whatever is given."""
    query = select(commands).order_by(commands.c.id.desc()).limit(limit)
    for column, value in ((commands.c.symbol, symbol), (commands.c.status, status), (commands.c.kind, kind)):
        if value is not None:
            query = query.where(column == value)
    async with db.connect() as conn:
        return [_row(r) for r in await conn.execute(query)]


async def last_finished_training(db: Database, symbol: str) -> dict | None:
    """The pair's newest finished retrain (done or failed)."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(commands)
                .where(
                    commands.c.symbol == symbol,
                    commands.c.kind == "retrain",
                    commands.c.status.in_(("done", "failed")),
                )
                .order_by(commands.c.finished_at.desc())
                .limit(1)
            )
        ).first()
    return _row(row) if row is not None else None


async def ever_triggered(db: Database, symbol: str, trigger: str) -> bool:
    """Whether a training of ``symbol`` was ever queued by ``trigger`` (whatever became of it)."""
    async with db.connect() as conn:
        found = await conn.execute(
            select(commands.c.id)
            .where(
                commands.c.symbol == symbol,
                commands.c.kind.in_(TRAINING_KINDS),
                commands.c.payload["trigger"].astext == trigger,
            )
            .limit(1)
        )
        return found.first() is not None


async def claim_next_training(db: Database) -> dict | None:
    """The next queued training, marked running: recalibrations first (seconds each), then oldest first."""
    oldest = (
        select(commands.c.id)
        .where(commands.c.status == "pending", commands.c.kind.in_(TRAINING_KINDS))
        .order_by((commands.c.kind == "recalibrate").desc(), commands.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    async with db.begin() as conn:
        row = (
            await conn.execute(
                update(commands)
                .where(commands.c.id == oldest)
                .values(
                    status="running",
                    started_at=func.now(),
                    finished_at=None,
                    attempts=commands.c.attempts + 1,
                    progress={"phase": "starting"},
                )
                .returning(commands)
            )
        ).first()
    return _row(row) if row is not None else None


async def claim_pending(db: Database, kind: str) -> list[dict]:
    """Every pending command of ``kind``, marked running, oldest first (for instant kinds like rollback)."""
    async with db.begin() as conn:
        rows = await conn.execute(
            update(commands)
            .where(commands.c.status == "pending", commands.c.kind == kind)
            .values(status="running", started_at=func.now(), attempts=commands.c.attempts + 1)
            .returning(commands)
        )
        return sorted((_row(r) for r in rows), key=lambda r: r["id"])


async def set_progress(db: Database, command_id: int, progress: dict) -> None:
    async with db.begin() as conn:
        await conn.execute(
            update(commands)
            .where(commands.c.id == command_id, commands.c.status == "running")
            .values(progress=progress)
        )


async def finish(db: Database, command_id: int, result: dict | None = None, error: str | None = None) -> None:
    """End a running command: ``done`` with its result, or ``failed`` with a readable reason."""
    async with db.begin() as conn:
        await conn.execute(
            update(commands)
            .where(commands.c.id == command_id)
            .values(status="failed" if error else "done", finished_at=func.now(), result=result, error=error)
        )


async def recover_interrupted(
    db: Database, why: str, max_attempts: int = MAX_ATTEMPTS, only: Collection[int] | None = None
) -> list[dict]:
    """Trainings left ``running`` by a consumer that died: queued again, or failed after ``max_attempts``.

    Call it when the one consumer starts, and whenever nothing of its own runs, before it claims
    anything: whatever is running then was running in a process that no longer exists. ``only``:
    just these commands (their process died, the consumer did not).
    """
    exhausted = commands.c.attempts >= max_attempts
    which = [commands.c.status == "running", commands.c.kind.in_(TRAINING_KINDS)]
    if only is not None:
        which.append(commands.c.id.in_(list(only)))
    async with db.begin() as conn:
        rows = await conn.execute(
            update(commands)
            .where(*which)
            .values(
                status=case((exhausted, "failed"), else_="pending"),
                finished_at=case((exhausted, func.now()), else_=None),
                error=case(
                    (
                        exhausted,
                        func.concat(
                            "interrupted: ",
                            why,
                            "; attempt ",
                            commands.c.attempts,
                            " of ",
                            max_attempts,
                            ", not retried",
                        ),
                    ),
                    else_=func.concat(
                        "interrupted: ",
                        why,
                        "; attempt ",
                        commands.c.attempts,
                        " of ",
                        max_attempts,
                        ", queued again",
                    ),
                ),
                progress=None,
            )
            .returning(commands.c.id, commands.c.symbol, commands.c.status, commands.c.error)
        )
        return [_row(r) for r in rows]


async def requeue(db: Database, command_id: int, why: str) -> None:
    """Put a running command back in the queue without counting its attempt: it was stopped, it did not fail."""
    async with db.begin() as conn:
        await conn.execute(
            update(commands)
            .where(commands.c.id == command_id, commands.c.status == "running")
            .values(
                status="pending",
                attempts=func.greatest(commands.c.attempts - 1, 0),
                progress=None,
                started_at=None,
                error=f"interrupted: {why}; queued again",
            )
        )


# --- consumers' heartbeats --------------------------------------------------------------------------
async def beat(db: Database, name: str, details: dict, started: bool = False) -> None:
    """Record that the service ``name`` is alive (``started``: it has just started)."""
    values = {"heartbeat_at": func.now(), "details": details}
    if started:
        values["started_at"] = func.now()
    async with db.begin() as conn:
        await conn.execute(
            pg_insert(services)
            .values(name=name, details=details)
            .on_conflict_do_update(index_elements=["name"], set_=values)
        )


async def service(db: Database, name: str) -> dict | None:
    """A service's last heartbeat: started_at, heartbeat_at, details and its age in seconds."""
    async with db.connect() as conn:
        row = (
            await conn.execute(
                select(
                    services, (func.extract("epoch", func.now() - services.c.heartbeat_at)).label("age_s")
                ).where(services.c.name == name)
            )
        ).first()
    return _row(row) if row is not None else None


def is_alive(heartbeat: dict | None, max_age_s: float = ALIVE_S) -> bool:
    return heartbeat is not None and float(heartbeat["age_s"]) <= max_age_s
