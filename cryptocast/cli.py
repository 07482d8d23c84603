"""The ``cryptocast`` command. Subcommands are grouped by the component they drive."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cryptocast import __version__
from cryptocast.clioutput import Json, emit
from cryptocast.cliutil import console, fail, with_database
from cryptocast.confirm import Yes, confirm
from cryptocast.exitcodes import EPILOG, USAGE
from cryptocast.logs import setup_logging
from cryptocast.settings import ConfigurationError, get_settings
from cryptocast.sql.database import Database, describe

app = typer.Typer(help="cryptocast: crypto price forecasting on Ray.", no_args_is_help=True, epilog=EPILOG)
db_app = typer.Typer(help="Database schema and status.", no_args_is_help=True, epilog=EPILOG)
app.add_typer(db_app, name="db")


def _mount_components() -> None:
    """Each component contributes its own commands (imports stay light: heavy ones load per command)."""
    from cryptocast.actors import cli as actors_cli
    from cryptocast.dashboard import cli as dashboard_cli
    from cryptocast.exchange import cli as exchange_cli
    from cryptocast.k8s import cli as k8s_cli
    from cryptocast.serve import cli as serve_cli
    from cryptocast.sql import cli as sql_cli
    from cryptocast.sql import export_cli
    from cryptocast.tune import cli as tune_cli

    app.add_typer(exchange_cli.app, name="exchange")
    for component in (actors_cli, sql_cli, export_cli, tune_cli, serve_cli, dashboard_cli, k8s_cli):
        component.register(app)


_mount_components()

LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")]


@app.callback()
def main(
    log_level: LogLevel = "",
    log_json: Annotated[bool, typer.Option("--log-json", help="one JSON object per log line")] = False,
) -> None:
    try:
        settings = get_settings()
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(USAGE) from None
    setup_logging(log_level or settings.log_level, log_json or settings.log_json)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the schema forward (to the newest revision by default)."""
    from cryptocast.sql import migrate
    from cryptocast.sql.queries import schema_version

    async def work(db: Database) -> None:
        await asyncio.to_thread(migrate.upgrade, db.url, revision)
        console.print(f"schema at [bold]{await schema_version(db)}[/] on {describe(db.url)}")

    with_database(get_settings(), work)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, '-1' or 'base' (there is no default)")],
    yes: Yes = False,
) -> None:
    """Migrate the schema back to REVISION: the tables added after it are dropped with their rows."""
    from cryptocast.sql import migrate
    from cryptocast.sql.queries import schema_version

    async def work(db: Database) -> None:
        current = await schema_version(db) or "base"
        confirm(
            f"downgrade the schema of {describe(db.url)} from {current} to {revision}, "
            "dropping the tables added since and every row in them",
            yes,
        )
        await asyncio.to_thread(migrate.downgrade, db.url, revision)
        console.print(f"schema at [bold]{await schema_version(db) or 'base'}[/] on {describe(db.url)}")

    with_database(get_settings(), work)


@db_app.command("status")
def db_status(as_json: Json = False) -> None:
    """Server version, schema revision and row counts."""
    from sqlalchemy import text

    from cryptocast.sql.migrate import head_revision
    from cryptocast.sql.queries import schema_version

    async def work(db: Database) -> None:
        server, current, head = await db.check(), await schema_version(db), head_revision()
        rows: dict[str, int] = {}
        if current:
            async with db.connect() as conn:
                for name in ("symbols", "price_history", "top_of_book", "models", "predictions", "commands"):
                    rows[name] = (await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one()
        if as_json:
            emit(
                {"server": server, "database": describe(db.url), "revision": current, "head": head}
                | {"up_to_date": current == head, "rows": rows}
            )
            return
        table = Table(title=f"PostgreSQL {server} at {describe(db.url)}")
        table.add_column("item")
        table.add_column("value", justify="right")
        table.add_row("schema revision", f"{current or 'none'} (head {head})")
        for name, count in rows.items():
            table.add_row(name, f"{count:,}")
        Console().print(table)

    with_database(get_settings(), work)


@db_app.command("prune")
def db_prune(yes: Yes = False) -> None:
    """Apply the configured retention to predictions and top of book (candles are kept).

    A retention of 0 days deletes every row of its table, so it asks first.
    """
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from cryptocast.sql.retention import prune
    from cryptocast.sql.schema import symbols

    settings = get_settings()
    retention = {
        "predictions": settings.retention_predictions_days,
        "top of book": settings.retention_top_of_book_days,
    }
    negative = [f"{table} ({days})" for table, days in retention.items() if days is not None and days < 0]
    if negative:
        raise fail(
            f"a retention must be 0 days or more, not {', '.join(negative)} (CRYPTOCAST_RETENTION_*_DAYS); "
            "nothing was pruned"
        )
    emptied = [table for table, days in retention.items() if days == 0]
    if emptied:
        confirm(f"delete every row of {' and '.join(emptied)} (a retention of 0 days)", yes)

    async def work(db: Database) -> None:
        async with db.connect() as conn:  # ages follow the exchange clock: the newest stored minute
            newest = (await conn.execute(select(func.max(symbols.c.last_candle_time)))).scalar()
        now = newest or datetime.now(UTC)  # prune() never lets it run ahead of the wall clock
        pruned = await prune(
            db, now, settings.retention_predictions_days, settings.retention_top_of_book_days
        )
        console.print(f"pruned {pruned.predictions} predictions and {pruned.top_of_book} top-of-book rows")

    with_database(settings, work)


@app.command()
def up() -> None:
    """Bring up the whole system (database, exchange, Ray, ingestion, training, serving, dashboard) until Ctrl-C."""
    from cryptocast.actors.cli import StopFlag, run_ingest
    from cryptocast.dashboard.server import start_dashboard, stop_dashboard
    from cryptocast.serve.config import ROUTER_APP
    from cryptocast.serve.deploy import DIRECT_INGRESS_ENV, direct_ingress_url, start_serving, stop_serving
    from cryptocast.sql.queries import schema_version

    settings = get_settings()
    stop = StopFlag()
    stop.install()
    if settings.serve_direct_ingress:  # before Ray starts: its processes inherit the environment
        os.environ[DIRECT_INGRESS_ENV] = "1"

    async def ready(db: Database) -> None:
        where = "embedded" if settings.database_url is None else "external"
        console.print(
            f"PostgreSQL {await db.check()} ({where}) at {describe(db.url)}, schema {await schema_version(db)}"
        )
        exchange = (
            f"replay at {settings.rest_url} ({settings.replay_speed:g}x)"
            if settings.is_replay
            else settings.rest_url
        )
        console.print(f"exchange: {exchange}\npairs: {', '.join(settings.pairs)}")
        api = await start_serving(
            settings, db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        console.print(f"API: {api} (OpenAPI at {api.rstrip('/')}/docs)")
        if settings.serve_direct_ingress:
            direct = await direct_ingress_url(ROUTER_APP, settings.api_port)
            console.print(f"API, direct to its replica: {direct} (a new port if the replica restarts)")
        console.print(f"dashboard: {start_dashboard(settings, api)}")
        console.print(
            f"training: daily at {settings.train_daily_minute // 60:02d}:{settings.train_daily_minute % 60:02d} UTC"
            f" exchange time (+{settings.train_stagger_minutes} min per pair), on a new pair and on request"
            f" ({settings.train_trials} trials x {settings.train_epochs} epochs); follow it at {api.rstrip('/')}/commands"
        )
        console.print("[green]up[/] — press Ctrl-C to stop")

    def shutdown() -> None:
        stop_dashboard()
        stop_serving()

    run_ingest(settings, stop, on_ready=ready, on_stop=shutdown, training=True)
    console.print("stopped cleanly")


if __name__ == "__main__":
    app()
