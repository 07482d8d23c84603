"""The database a Serve replica talks to (every replica of every deployment opens it the same way)."""

from __future__ import annotations

from cryptocast.sql.database import Database
from cryptocast.sql.urlfile import read_url

REPLICA_POOL = 3  # a replica issues a handful of short queries at once


def replica_database(database_url_file: str | None, pool_size: int = REPLICA_POOL) -> Database:
    """The database a replica talks to: the URL in the file it was given, else ``CRYPTOCAST_DATABASE_URL``."""
    return Database(read_url(database_url_file), pool_size=pool_size)
