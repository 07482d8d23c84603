"""Migrations: up, down, and no drift between the migrations and the declared schema."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from cryptocast.sql import migrate
from cryptocast.sql.schema import metadata


async def _inspect(url: URL, fn):
    engine = create_async_engine(migrate.async_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(conn).get_table_names())


def test_upgrade_downgrade_roundtrip(blank_db_url: URL) -> None:
    migrate.upgrade(blank_db_url)
    assert (
        asyncio.run(_inspect(blank_db_url, lambda c: MigrationContext.configure(c).get_current_revision()))
        == migrate.head_revision()
    )
    assert {
        "symbols",
        "price_history",
        "top_of_book",
        "models",
        "predictions",
        "commands",
        "gaps",
    } <= asyncio.run(_inspect(blank_db_url, _tables))
    migrate.downgrade(blank_db_url, "base")
    assert asyncio.run(_inspect(blank_db_url, _tables)) == {"alembic_version"}
    migrate.upgrade(blank_db_url)  # and up again on the same database
    assert "price_history" in asyncio.run(_inspect(blank_db_url, _tables))


def test_migrations_match_declared_schema(blank_db_url: URL) -> None:
    migrate.upgrade(blank_db_url)
    diff = asyncio.run(
        _inspect(
            blank_db_url,
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata),
        )
    )
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
