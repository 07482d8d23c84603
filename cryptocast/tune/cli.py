"""Commands of the forecasting component: ``train``, ``models list|rollback`` and ``evaluate``.

Mounted on the main ``cryptocast`` app by :func:`register`; ``evaluate`` lives in
:mod:`cryptocast.tune.evaluate_cli`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cryptocast.cliutil import Pair, console, fail, pair_id, with_database
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.tune.evaluate_cli import evaluate
from cryptocast.tune.history import NotEnoughHistory

if TYPE_CHECKING:
    from cryptocast.tune.registry import ModelRecord
    from cryptocast.tune.training_run import TrainOutcome

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


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
) -> None:
    """Retrain a pair: queued for the running system's training scheduler (a command; --wait follows it),
    or, with --local, swept, gated and registered right here."""
    if local:
        _train_here(pair, trials or 8, epochs or 4, days or 30)
        return
    if (trials, epochs, days) != (None, None, None):
        raise fail(
            "--trials, --epochs and --days apply to --local; the running system trains with "
            "CRYPTOCAST_TRAIN_TRIALS, _EPOCHS and _DAYS",
            2,
        )
    from cryptocast.tune.follow import follow, queue_retrain

    settings = get_settings()
    command = with_database(settings, lambda db: queue_retrain(db, pair), migrate=True)
    if wait:
        raise typer.Exit(with_database(settings, lambda db: follow(db, command, timeout)))


def _train_here(pair: str, trials: int, epochs: int, days: int) -> None:
    from cryptocast.tune.baseline import ensure_baseline
    from cryptocast.tune.pipeline import train_pair
    from cryptocast.tune.registry import ModelStore
    from cryptocast.tune.training_run import TrainOptions

    settings = get_settings()
    store = ModelStore(settings.model_store)

    async def work(db: Database) -> TrainOutcome:
        sid = await pair_id(db, pair)
        await ensure_baseline(db, store, sid)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
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
def models_list(pair: Annotated[str | None, typer.Option("--pair", help="only this pair")] = None) -> None:
    """Every registered version with its status and reason."""
    from cryptocast.sql.queries import list_symbols
    from cryptocast.tune.registry import records

    async def work(db: Database) -> tuple[dict[int, str], list[ModelRecord]]:
        names = {s["id"]: s["symbol"] for s in await list_symbols(db)}
        return names, await records(db, await pair_id(db, pair) if pair else None)

    names, rows = with_database(get_settings(), work)
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
    app.command()(train)
    app.command()(evaluate)
    app.add_typer(models_app, name="models")
