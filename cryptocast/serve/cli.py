"""``cryptocast serve config|apply``: the Serve config generated from the database, printed or applied."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
import yaml

from cryptocast.cliutil import console
from cryptocast.settings import ConfigurationError, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from cryptocast.sql.database import Database

T = TypeVar("T")

serve_app = typer.Typer(help="Ray Serve: the API and one application per pair.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")


def _with_db(work: Callable[[Database, URL], Awaitable[T]]) -> T:
    from cryptocast.sql.database import Database
    from cryptocast.sql.location import database_url

    settings = get_settings()
    try:
        settings.require_database_url()
    except ConfigurationError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None

    async def run(url: URL) -> T:
        db = Database(url)
        try:
            return await work(db, url)
        finally:
            await db.dispose()

    with database_url(settings) as url:
        return asyncio.run(run(url))


@serve_app.command("config")
def config() -> None:
    """Print the declarative config (YAML, ServeDeploySchema) for the pairs in the database."""
    from cryptocast.serve.config import ServeOptions, generate

    async def work(db: Database, url: URL) -> dict:
        return await generate(db, ServeOptions.from_settings(get_settings()))

    typer.echo(yaml.safe_dump(_with_db(work), sort_keys=False))


@serve_app.command("apply")
def apply() -> None:
    """Apply the generated config to the running Ray (joined through RAY_ADDRESS) and wait for it; start
    the training scheduler there too (models are trained wherever predictions are served)."""
    from cryptocast.actors.ray_runtime import start_ray
    from cryptocast.serve.config import ServeOptions
    from cryptocast.serve.deploy import api_url, deploy
    from cryptocast.tune.service import TrainingConfig, start_training

    settings = get_settings()
    start_ray(address=settings.ray_address)

    async def work(db: Database, url: URL) -> str:
        plain = url.render_as_string(hide_password=False)
        options = ServeOptions.from_settings(settings, plain)
        await deploy(db, options)
        start_training(TrainingConfig.from_settings(settings, plain))
        return api_url(options)

    typer.echo(_with_db(work))
