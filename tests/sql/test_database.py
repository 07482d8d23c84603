"""The two pool settings of the ingestion hosts: asynchronous commit, and no ping before each use."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from cryptocast.actors.dberrors import DB_ERRORS
from cryptocast.sql.database import Database


async def _setting(db: Database) -> str:
    async with db.connect() as conn:
        return (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()


async def _backend_killed_then_used(db: Database) -> None:
    """Warm the pool's one connection, end its server process from outside, then use the pool."""
    async with db.connect() as conn:
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    killer = Database(db.url, pool_size=1)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()
    async with db.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def test_ingestion_commits_asynchronously_and_others_do_not(db_url: URL) -> None:
    ingest, default = Database(db_url, synchronous_commit=False), Database(db_url)
    try:
        assert await _setting(ingest) == "off"
        assert await _setting(default) == "on"
    finally:
        await ingest.dispose()
        await default.dispose()


async def test_without_a_ping_a_dead_connection_fails_once_then_the_pool_recovers(db_url: URL) -> None:
    """The caller holds its write through the one failure (heldwrites.py); with the ping there is none."""
    unpinged, pinged = Database(db_url, pool_size=1, pre_ping=False), Database(db_url, pool_size=1)
    try:
        with pytest.raises(DB_ERRORS):
            await _backend_killed_then_used(unpinged)
        async with unpinged.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        await _backend_killed_then_used(pinged)
    finally:
        await unpinged.dispose()
        await pinged.dispose()
