"""The errors that mean the database is down (unreachable, restarting), not that a write was wrong.

An ingestor holds its candles through them and writes them once the database is back; the pair
actor and the supervisor log them and carry on. Any other error is a bug and propagates.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError

from cryptocast.sql.database import DatabaseUnavailable

DB_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    DatabaseUnavailable,
    OperationalError,
    DBAPIError,
    asyncpg.CannotConnectNowError,
)
