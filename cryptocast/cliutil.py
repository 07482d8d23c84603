"""What every ``cryptocast`` subcommand shares: the console, clear failures, a database to work on,
and the pair a command names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.engine import URL

from cryptocast.settings import ConfigurationError, Settings
from cryptocast.sql.database import Database, DatabaseUnavailable

T = TypeVar("T")
console = Console(stderr=True, soft_wrap=True)
Pair = Annotated[str, typer.Option("--pair", help="trading pair, e.g. BTCUSDT")]


def fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Run ``work(db)`` on the configured database, or the embedded one started for the call.

    ``migrate`` brings the schema to the newest revision first. A database that cannot be reached
    ends the command with one line that says what to check.
    """
    from cryptocast.sql import migrate as migrations
    from cryptocast.sql.location import database_url

    async def run(url: URL) -> T:
        db = Database(url, pool_size=settings.db_pool_size)
        try:
            await db.check()
            if migrate:
                await asyncio.to_thread(migrations.upgrade, url)
            return await work(db)
        finally:
            await db.dispose()

    try:
        with database_url(settings) as url:
            return asyncio.run(run(url))
    except DatabaseUnavailable as exc:
        raise fail(str(exc)) from None
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


async def pair_id(db: Database, pair: str) -> int:
    """The id of the pair a command names; an unknown pair ends the command."""
    from cryptocast.sql.queries import symbol_id

    sid = await symbol_id(db, pair.upper())
    if sid is None:
        console.print(f"[red]error:[/] unknown pair {pair.upper()} (add it first)")
        raise typer.Exit(1)
    return sid
