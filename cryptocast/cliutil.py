"""What every ``cryptocast`` subcommand shares: the console, clear failures, a database to work on,
and the pair a command names."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import URL

from cryptocast.exitcodes import FAILURE, UNREACHABLE, USAGE
from cryptocast.settings import ConfigurationError, Settings
from cryptocast.sql.database import Database, DatabaseUnavailable, async_url

T = TypeVar("T")
console = Console(stderr=True, soft_wrap=True)
Pair = Annotated[str, typer.Option("--pair", help="trading pair, e.g. BTCUSDT")]


def fail(message: str, code: int = FAILURE) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Run ``work(db)`` on the configured database, or the embedded one started for the call.

    ``migrate`` brings the schema to the newest revision first. A malformed database URL ends the
    command as a usage error; a database that cannot be reached (or refuses us) as unreachable, each
    with one line that says what to check.
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

    if settings.database_url is not None:
        try:
            async_url(settings.database_url.get_secret_value())
        except DatabaseUnavailable as exc:
            raise fail(str(exc), USAGE) from None
    try:
        with database_url(settings) as url:
            return asyncio.run(run(url))
    except DatabaseUnavailable as exc:
        raise fail(str(exc), UNREACHABLE) from None
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(USAGE) from None


def pair_name(pair: str) -> str:
    """The pair a command names, upper-cased; a malformed name ends the command as a usage error."""
    from cryptocast.actors.commands import PairRejected, normalise_symbol

    try:
        return normalise_symbol(pair)
    except PairRejected as exc:
        raise fail(escape(str(exc)), USAGE) from None


async def pair_id(db: Database, pair: str) -> int:
    """The id of the pair a command names; a malformed or unknown pair ends the command as a usage error."""
    from cryptocast.sql.queries import symbol_id

    symbol = pair_name(pair)
    sid = await symbol_id(db, symbol)
    if sid is None:
        raise fail(f"unknown pair {symbol} (add it first)", USAGE)
    return sid
