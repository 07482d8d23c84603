"""Schema migrations, callable from code and from ``cryptocast db``.

Alembic's scripts ship inside the package, so an installed copy can migrate its own database.
Alembic's env runs its own event loop, so these functions are synchronous and must not be called
from inside a running loop (use :func:`asyncio.to_thread`).
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection

from cryptocast.sql.database import async_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    cfg = Config(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's ini parser treats '%' as interpolation.
    cfg.set_main_option(
        "sqlalchemy.url", async_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(url: str | URL, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | URL, revision: str = "-1") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://localhost/x")).get_current_head()


def current_revision_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
