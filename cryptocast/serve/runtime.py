"""Process-level helpers shared by the Serve replicas."""

from __future__ import annotations

from cryptocast.settings import get_settings
from cryptocast.sql.database import Database

REPLICA_POOL = 3  # a replica issues a handful of short queries at once


def replica_database(database_url: str | None, pool_size: int = REPLICA_POOL) -> Database:
    """The database a replica talks to: the URL it was given, else ``CRYPTOCAST_DATABASE_URL``."""
    if database_url is None:
        configured = get_settings().database_url
        if configured is None:
            raise RuntimeError("no database URL: set CRYPTOCAST_DATABASE_URL for the Serve replicas")
        database_url = configured.get_secret_value()
    return Database(database_url, pool_size=pool_size)
