"""``cryptocast commands list|show``: what was asked of the running system and what became of it.

Mounted on the main app by :func:`register`. Both print a table for people and, with ``--json``, the
same records the API's ``/commands`` routes answer, for scripts.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cryptocast.clioutput import Json, emit
from cryptocast.cliutil import fail, pair_name, with_database
from cryptocast.exitcodes import EPILOG, USAGE
from cryptocast.settings import get_settings
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.schema import COMMAND_KINDS, COMMAND_STATUSES

commands_app = typer.Typer(
    help="Commands to the running system (pairs, trainings, rollbacks) and their outcome.",
    no_args_is_help=True,
    epilog=EPILOG,
)


def register(app: typer.Typer) -> None:
    app.add_typer(commands_app, name="commands")


def describe_progress(progress: dict | None) -> str:
    """One line for a running command's progress: phase, trial i of n, best score, elapsed, ETA."""
    if not progress:
        return ""
    parts = [progress.get("phase", "")]
    if progress.get("trials"):
        parts.append(f"trial {progress.get('trial', 0)}/{progress['trials']}")
    if progress.get("best_val_skill") is not None:
        parts.append(f"best val skill {progress['best_val_skill']:+.4f}")
    if progress.get("elapsed_s") is not None:
        parts.append(f"{progress['elapsed_s']:.0f} s")
    if progress.get("eta_s") is not None:
        parts.append(f"about {progress['eta_s']:.0f} s left")
    return ", ".join(p for p in parts if p)


def describe_outcome(view: dict) -> str:
    """One line for what a command came to (or where it stands)."""
    if view["status"] == "failed":
        return view["error"] or "failed"
    if view["status"] == "running":
        return describe_progress(view["progress"])
    result = view["result"] or {}
    if "lstm" in result and "gate" in result:
        served = result["lstm"]["served_horizons"]
        where = f"serves h={','.join(map(str, served))}" if served else "shadow (persistence serves)"
        return f"LSTM v{result['lstm']['version']}: {where}"
    if "baseline" in result:
        return f"recalibrated: persistence v{result['baseline']['version']}"
    if "restored" in result:
        restored = result["restored"]
        return f"restored LSTM v{restored['version']}" if restored else "persistence serves alone"
    return view["error"] or ""


@commands_app.command("list")
def list_commands(
    pair: Annotated[str | None, typer.Option("--pair", help="only this pair")] = None,
    status: Annotated[str | None, typer.Option(help=f"one of {', '.join(COMMAND_STATUSES)}")] = None,
    kind: Annotated[str | None, typer.Option(help=f"one of {', '.join(COMMAND_KINDS)}")] = None,
    limit: Annotated[int, typer.Option(min=1, max=command_queue.LIST_LIMIT)] = 20,
    as_json: Json = False,
) -> None:
    """Commands, newest first."""
    if status is not None and status not in COMMAND_STATUSES:
        raise fail(f"--status must be one of {', '.join(COMMAND_STATUSES)}", USAGE)
    if kind is not None and kind not in COMMAND_KINDS:
        raise fail(f"--kind must be one of {', '.join(COMMAND_KINDS)}", USAGE)

    symbol = pair_name(pair) if pair else None

    async def work(db: Database) -> list[dict]:
        rows = await command_queue.find(db, symbol, status, kind, limit)
        return [command_queue.view(r) for r in rows]

    views = with_database(get_settings(), work, migrate=True)
    if as_json:
        emit({"commands": views})
        return
    table = Table(
        "id", "kind", "pair", "status", "trigger", "created (UTC)", "took", "outcome", title="commands"
    )
    for v in views:
        took = f"{v['seconds']:.0f} s" if v["seconds"] is not None else ""
        table.add_row(
            str(v["id"]),
            v["kind"],
            v["symbol"] or "",
            v["status"],
            v["trigger"] or "",
            v["created_at"][:19].replace("T", " "),
            took,
            describe_outcome(v),
        )
    Console().print(table)


@commands_app.command("show")
def show(command_id: Annotated[int, typer.Argument(min=1)], as_json: Json = False) -> None:
    """One command in full: status, progress while running, result or the reason it failed."""

    async def work(db: Database) -> dict | None:
        row = await command_queue.get(db, command_id)
        return command_queue.view(row) if row else None

    view = with_database(get_settings(), work, migrate=True)
    if view is None:
        raise fail(f"no command {command_id}")
    if as_json:
        emit(view)
        return
    table = Table("field", "value", title=f"command {command_id}")
    for key in (
        "kind",
        "symbol",
        "status",
        "trigger",
        "reason",
        "created_at",
        "started_at",
        "finished_at",
        "seconds",
        "attempts",
        "error",
    ):
        if view[key] is not None:
            table.add_row(key, str(view[key]))
    if view["progress"]:
        table.add_row("progress", describe_progress(view["progress"]))
    if view["result"]:
        table.add_row("outcome", describe_outcome(view))
        for decision in view["result"].get("gate") or []:
            table.add_row(f"gate h={decision['horizon']}", decision["reason"])
    Console().print(table)
