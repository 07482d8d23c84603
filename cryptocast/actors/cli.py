"""CLI of the ingest side: ``cryptocast ingest``, ``cryptocast pairs …`` and ``cryptocast check``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from cryptocast.clioutput import Json, emit, progress_bar
from cryptocast.cliutil import console, fail, pair_name, with_database
from cryptocast.confirm import Yes, confirm
from cryptocast.exitcodes import EPILOG, FAILURE, UNREACHABLE, USAGE
from cryptocast.settings import LOOPBACK, Settings, get_settings
from cryptocast.sql.database import Database

if TYPE_CHECKING:
    from cryptocast.actors.check import Completeness

pairs_app = typer.Typer(
    help="Tracked pairs (changes travel as command rows to the running system).",
    no_args_is_help=True,
    epilog=EPILOG,
)
REPLAY_READY_S = 60.0
BACKFILL_WAIT_S = 3600.0


def register(app: typer.Typer) -> None:
    app.command("ingest", epilog=EPILOG)(ingest)
    app.command("check", epilog=EPILOG)(check)
    app.add_typer(pairs_app, name="pairs")


# --- pairs ----------------------------------------------------------------------------------------
@pairs_app.command("add")
def pairs_add(
    symbol: str,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="follow the backfill until the pair is live (a bar on a terminal)"),
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="--wait: give up after this many seconds")] = (
        BACKFILL_WAIT_S
    ),
) -> None:
    """Validate SYMBOL against the exchange and ask the running system to track it."""
    from cryptocast.actors.backfillwatch import BackfillFailed, BackfillState, follow_backfill
    from cryptocast.actors.commands import PairRejected, validate_pair
    from cryptocast.exchange.binance import BinanceExchange
    from cryptocast.sql.queries import submit_command

    settings = get_settings()
    name = pair_name(symbol)  # a malformed name ends the command before the exchange is asked

    async def work(db: Database) -> None:
        try:
            async with BinanceExchange(settings) as exchange:
                info = await validate_pair(exchange, name)
        except PairRejected as exc:
            console.print(f"[red]refused:[/] {escape(str(exc))}")
            raise typer.Exit(USAGE) from None
        except OSError as exc:
            raise fail(f"cannot reach the exchange at {settings.rest_url}: {exc}", UNREACHABLE) from None
        command = await submit_command(db, "add_pair", info.symbol)
        console.print(
            f"add {info.symbol} ({info.base_asset}/{info.quote_asset}) requested as command {command}"
        )
        if not wait:
            return
        with progress_bar(as_json=False) as bar:
            task = bar.add_task(f"{info.symbol} queued", total=None)

            def show(state: BackfillState) -> None:
                bar.update(
                    task,
                    description=f"{info.symbol} {state.status or 'queued'}",
                    completed=state.done,
                    total=state.total or None,
                )

            try:
                await follow_backfill(db, info.symbol, command, timeout, show)
            except (BackfillFailed, TimeoutError) as exc:
                raise fail(escape(str(exc))) from None
        console.print(f"{info.symbol} is live")

    with_database(settings, work, migrate=True)


@pairs_app.command("remove")
def pairs_remove(
    symbol: str,
    purge: Annotated[bool, typer.Option(help="also delete its candles, models and predictions")] = False,
    yes: Yes = False,
) -> None:
    """Stop ingesting SYMBOL; its data stays unless --purge (which asks first, or takes --yes)."""
    from cryptocast.sql.queries import submit_command

    name = pair_name(symbol)
    if purge:
        confirm(f"purge {name}: delete its candles, top of book, models and predictions", yes)

    async def work(db: Database) -> None:
        command = await submit_command(db, "purge_pair" if purge else "remove_pair", name)
        console.print(f"{'purge' if purge else 'remove'} {name} requested as command {command}")

    with_database(get_settings(), work, migrate=True)


@pairs_app.command("list")
def pairs_list(as_json: Json = False) -> None:
    """Tracked pairs with their state, last candle and backfill progress."""
    from cryptocast.sql.queries import list_symbols

    async def work(db: Database) -> None:
        rows = await list_symbols(db)
        if as_json:
            emit({"pairs": [_pair_view(row) for row in rows]})
            return
        table = Table("pair", "status", "last candle (UTC)", "backfill", "restarts", "last error")
        for row in rows:
            total = row["backfill_total"]
            progress = f"{100 * row['backfill_done'] / total:.0f} %" if total else "-"
            last = f"{row['last_candle_time']:%Y-%m-%d %H:%M}" if row["last_candle_time"] else "-"
            table.add_row(
                row["symbol"],
                row["status"],
                last,
                progress,
                str(row["restarts"]),
                (row["last_error"] or "")[:60],
            )
        Console().print(table)

    with_database(get_settings(), work, migrate=True)


def _pair_view(row: dict) -> dict:
    """A pair's row as ``pairs list --json`` prints it."""
    total = row["backfill_total"]
    return {
        "symbol": row["symbol"],
        "exchange": row["exchange"],
        "base_asset": row["base_asset"],
        "quote_asset": row["quote_asset"],
        "status": row["status"],
        "added_at": row["added_at"],
        "last_candle_time": row["last_candle_time"],
        "backfill": {
            "done": row["backfill_done"],
            "total": total,
            "percent": round(100.0 * row["backfill_done"] / total, 2) if total else None,
            "eta_s": row["backfill_eta_s"],
        },
        "restarts": row["restarts"],
        "last_error": row["last_error"],
        "heartbeat_at": row["heartbeat_at"],
    }


# --- check ----------------------------------------------------------------------------------------
def check(as_json: Json = False) -> None:
    """Completeness per pair: expected vs stored minutes, exchange holes vs ingestion gaps, duplicates.

    Exits 1 when a pair misses minutes that are not exchange holes or holds duplicates.
    """
    from cryptocast.actors.check import completeness

    async def work(db: Database) -> list[Completeness]:
        with progress_bar(as_json) as bar:
            task = bar.add_task("checking pairs", total=None)
            return await completeness(db, lambda done, total: bar.update(task, completed=done, total=total))

    report = with_database(get_settings(), work, migrate=True)
    problems = any(c.missing or c.duplicates for c in report)
    if as_json:
        emit({"ok": not problems, "pairs": [c.view() for c in report]})
    else:
        _check_table(report)
    if problems:
        raise typer.Exit(FAILURE)


def _check_table(report: list[Completeness]) -> None:
    table = Table(
        "pair",
        "first (UTC)",
        "last (UTC)",
        "expected",
        "stored",
        "exchange holes",
        "missing",
        "duplicates",
        "complete",
    )
    for c in report:
        table.add_row(
            c.symbol,
            c.first[:16],
            c.last[:16],
            f"{c.expected:,}",
            f"{c.stored:,}",
            f"{c.exchange_holes:,}",
            f"{c.missing:,}",
            str(c.duplicates),
            f"{c.percent:.3f} %",
        )
    Console().print(table)


# --- ingest -----------------------------------------------------------------------------------------
@contextmanager
def replay_exchange(settings: Settings) -> Iterator[None]:
    """Run the replay exchange as a child process when it is the configured exchange."""
    if not settings.is_replay:
        yield
        return
    command = [
        sys.executable,
        "-m",
        "cryptocast.cli",
        "exchange",
        "replay",
        "--port",
        str(settings.replay_port),
        "--speed",
        str(settings.replay_speed),
        "--history",
        f"{settings.replay_history_days:g}d",
    ]
    child = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)
    try:
        _wait_for_port(settings.replay_port, child)
        yield
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()


def _wait_for_port(port: int, child: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + REPLAY_READY_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise typer.Exit(1)
        with socket.socket() as s:
            if s.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    console.print(
        f"[red]error:[/] the replay exchange did not open port {port} within {REPLAY_READY_S:.0f} s"
    )
    raise typer.Exit(1)


class StopFlag:
    """Set from a signal handler: a plain attribute, because a lock taken there can deadlock."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request)

    def _request(self, *_: object) -> None:
        self.requested = True

    def wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.requested


def run_ingest(
    settings: Settings,
    stop: StopFlag,
    on_ready: Callable[[Database], Awaitable[None]] | None = None,
    on_stop: Callable[[], None] | None = None,
    training: bool = False,
) -> None:
    """Database, exchange, Ray, the supervisor and (``training``) the training scheduler, until ``stop``
    is set; then a graceful shutdown.

    ``on_ready(db)`` runs once everything is up (``up`` starts serving there); ``on_stop()`` runs
    before Ray stops.
    """
    from cryptocast.actors.ray_runtime import start_ray, stop_ray
    from cryptocast.sql.queries import list_symbols, submit_command
    from cryptocast.system import start_background, stop_background

    async def work(db: Database) -> None:
        tracked = {row["symbol"] for row in await list_symbols(db)}
        for pair in settings.pairs:
            if pair not in tracked:
                await submit_command(db, "add_pair", pair)
        url = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with replay_exchange(settings):
            start_ray(address=settings.ray_address)
            background = start_background(settings, url, training=training)
            try:
                if on_ready:
                    await on_ready(db)
                with progress_bar(as_json=False) as bar:
                    shown = _IngestProgress(bar)
                    while not stop.requested:
                        shown.show(await background.supervisor.snapshot.remote())
                        await asyncio.to_thread(stop.wait, 5.0)
            finally:
                console.print("stopping: flushing candles and closing streams …")
                await asyncio.to_thread(stop_background, background)
                if on_stop:
                    on_stop()
                stop_ray()

    with_database(settings, work, migrate=True)


class _IngestProgress:
    """Each pair's backfill as a bar on a terminal (minutes stored of the span to fetch); elsewhere a
    status line per poll."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def show(self, snapshot: dict) -> None:
        if self.bar.disable:
            _print_progress(snapshot)
            return
        for symbol, p in sorted(snapshot["pairs"].items()):
            b = p["backfill"]
            description = f"{symbol} {p['status']}"
            if symbol not in self.tasks:
                self.tasks[symbol] = self.bar.add_task(description, total=None)
            self.bar.update(
                self.tasks[symbol], description=description, completed=b["done"], total=b["total"] or None
            )


def _print_progress(snapshot: dict) -> None:
    parts = []
    for symbol, p in sorted(snapshot["pairs"].items()):
        b = p["backfill"]
        extra = f" {100 * b['done'] / b['total']:.0f}%" if p["status"] == "backfilling" and b["total"] else ""
        last = (p["last_candle_time"] or "-")[:16]
        parts.append(f"{symbol} {p['status']}{extra} last={last}")
    console.print("  ".join(parts) or "no pairs yet")


def ingest(
    pairs: Annotated[str, typer.Option(help="comma-separated pairs to track (default: settings)")] = "",
    speed: Annotated[float, typer.Option(help="replay speed (replay exchange only)")] = 0.0,
) -> None:
    """Start ingestion (Ray on loopback, the supervisor, one actor per pair) until Ctrl-C."""
    settings = get_settings()
    updates: dict[str, object] = {}
    if pairs:
        updates["pairs"] = [p.strip().upper() for p in pairs.split(",") if p.strip()]
    if speed:
        updates["replay_speed"] = speed
    settings = settings.model_copy(update=updates)
    stop = StopFlag()
    stop.install()

    async def ready(db: Database) -> None:
        console.print("[green]ingesting[/] — press Ctrl-C to stop")

    run_ingest(settings, stop, on_ready=ready)
    console.print("stopped cleanly")
