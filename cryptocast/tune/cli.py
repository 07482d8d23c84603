"""Commands of the forecasting component: ``train``, ``models list|rollback`` and ``evaluate``.

Mounted on the main ``cryptocast`` app by :func:`register`; ``evaluate`` lives in
:mod:`cryptocast.tune.evaluate_cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cryptocast.clioutput import Json, emit, progress_bar
from cryptocast.cliutil import Pair, console, fail, pair_id, pair_name, with_database
from cryptocast.exitcodes import EPILOG, OK, USAGE
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.tune.evaluate_cli import evaluate
from cryptocast.tune.history import NotEnoughHistory

if TYPE_CHECKING:
    from cryptocast.tune.registry import ModelRecord
    from cryptocast.tune.training_run import TrainOutcome

models_app = typer.Typer(help="The model registry.", no_args_is_help=True, epilog=EPILOG)


def train(
    pair: Pair,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the training to its end (exit 1 if it fails)")
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="train in this process instead of asking the running system")
    ] = False,
    trials: Annotated[int | None, typer.Option(help="--local: configurations the sweep tries [8]")] = None,
    epochs: Annotated[int | None, typer.Option(help="--local: most epochs per trial [4]")] = None,
    days: Annotated[int | None, typer.Option(help="--local: most days of history [30]")] = None,
    timeout: Annotated[float, typer.Option(help="--wait: give up after this many seconds")] = 3600.0,
    as_json: Json = False,
) -> None:
    """Retrain a pair: queued for the running system's training scheduler (a command; --wait follows it),
    or, with --local, swept, gated and registered right here.

    With --json: the command as ``commands show --json`` prints it (once it ended, with --wait), or
    with --local the training's result."""
    if local:
        _train_here(pair, trials or 8, epochs or 4, days or 30, as_json)
        return
    if (trials, epochs, days) != (None, None, None):
        raise fail(
            "--trials, --epochs and --days apply to --local; the running system trains with "
            "CRYPTOCAST_TRAIN_TRIALS, _EPOCHS and _DAYS",
            USAGE,
        )
    from cryptocast.sql import command_queue
    from cryptocast.tune.follow import follow, queue_retrain

    async def view(db: Database, command: int) -> dict | None:
        row = await command_queue.get(db, command)
        return command_queue.view(row) if row else None

    settings = get_settings()
    command = with_database(settings, lambda db: queue_retrain(db, pair), migrate=True)
    code = with_database(settings, lambda db: follow(db, command, timeout)) if wait else OK
    if as_json:
        emit(with_database(settings, lambda db: view(db, command)) or {})
    raise typer.Exit(code)


def _train_here(pair: str, trials: int, epochs: int, days: int, as_json: bool) -> None:
    from cryptocast.tune.baseline import ensure_baseline
    from cryptocast.tune.pipeline import train_pair
    from cryptocast.tune.registry import ModelStore
    from cryptocast.tune.training_run import TrainOptions

    settings = get_settings()
    store = ModelStore(settings.model_store)

    async def work(db: Database) -> TrainOutcome:
        sid = await pair_id(db, pair)
        await ensure_baseline(db, store, sid)
        with progress_bar(as_json) as bar:
            task = bar.add_task(f"training {pair.upper()}", total=trials)
            return await train_pair(
                db,
                store,
                sid,
                TrainOptions(trials=trials, epochs=epochs, days=days),
                settings.data_dir / "tune",
                lambda p: bar.update(task, completed=p.get("trial", 0)),
                settings.ray_address,
            )

    try:
        outcome = with_database(settings, work)
    except NotEnoughHistory as exc:
        raise fail(f"{pair.upper()} {exc}") from None
    if as_json:
        emit({"pair": pair_name(pair), **outcome.summary()})
        return
    table = Table(title=f"{pair.upper()} LSTM v{outcome.lstm.version}: {outcome.lstm.status}")
    for column in ("horizon", "served by", "test skill", "p vs champion", "p vs persistence"):
        table.add_column(column, justify="right")
    for d in outcome.decisions:
        skill = outcome.report["models"]["candidate"][str(d.horizon)]["skill"]
        table.add_row(
            f"{d.horizon} min",
            "lstm" if d.promote else "champion",
            f"{skill:+.4f}",
            f"{d.p_vs_champion:.3g}",
            f"{d.p_vs_persistence:.3g}",
        )
    Console().print(table)
    console.print(f"sweep: {outcome.sweep_seconds:.0f} s for {trials} trials")


@models_app.command("list")
def models_list(
    pair: Annotated[str | None, typer.Option("--pair", help="only this pair")] = None, as_json: Json = False
) -> None:
    """Every registered version with its status and reason."""
    from cryptocast.sql.queries import list_symbols
    from cryptocast.tune.registry import records

    async def work(db: Database) -> tuple[dict[int, str], list[ModelRecord]]:
        names = {s["id"]: s["symbol"] for s in await list_symbols(db)}
        return names, await records(db, await pair_id(db, pair) if pair else None)

    names, rows = with_database(get_settings(), work)
    if as_json:
        emit({"models": [_model_view(r, names.get(r.symbol_id)) for r in rows]})
        return
    table = Table(title="models")
    for column in ("pair", "version", "kind", "status", "serves", "trained", "reason"):
        table.add_column(column)
    for r in rows:
        serves = ",".join(map(str, r.served_horizons)) if r.kind == "lstm" else "floor"
        table.add_row(
            names.get(r.symbol_id, "?"),
            str(r.version),
            r.kind,
            r.status,
            serves,
            f"{r.trained_at:%Y-%m-%d %H:%M}",
            (r.status_reason or "")[:90],
        )
    Console().print(table)


def _model_view(record: ModelRecord, symbol: str | None) -> dict:
    """A registered version as ``models list --json`` prints it."""
    return {
        "id": record.id,
        "symbol": symbol,
        "version": record.version,
        "kind": record.kind,
        "status": record.status,
        "status_reason": record.status_reason,
        "served_horizons": record.served_horizons,
        "trained_at": record.trained_at,
        "data_start": record.data_start,
        "data_end": record.data_end,
        "artifact_uri": record.artifact_uri,
        "artifact_sha256": record.sha256,
    }


@models_app.command("rollback")
def models_rollback(pair: Pair) -> None:
    """Retire the pair's LSTM champion and restore the previous one (or leave the baseline serving)."""
    from cryptocast.tune.registry import NoChampion, rollback

    async def work(db: Database) -> ModelRecord | None:
        try:
            return await rollback(db, await pair_id(db, pair))
        except NoChampion as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None

    restored = with_database(get_settings(), work)
    console.print(
        f"restored v{restored.version}" if restored else "rolled back: the persistence baseline serves alone"
    )


def register(app: typer.Typer) -> None:
    """Add ``train``, ``evaluate`` and the ``models`` group to the main app."""
    app.command(epilog=EPILOG)(train)
    app.command(epilog=EPILOG)(evaluate)
    app.add_typer(models_app, name="models")
