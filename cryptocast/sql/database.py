"""Connections: one async SQLAlchemy engine (asyncpg driver) per process.

Queries go through SQLAlchemy; bulk paths (COPY, LISTEN) borrow the raw asyncpg connection from the
same pool, so there is one pool and one set of connection settings.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

CONNECT_TIMEOUT_S = 10


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or refused us; the message is one actionable line."""


def async_url(url: str | URL) -> URL:
    """Normalise any ``postgres://`` / ``postgresql://`` URL to the asyncpg driver."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise DatabaseUnavailable(
            f"CRYPTOCAST_DATABASE_URL is not a valid URL ({exc}); expected postgresql://user:password@host:port/dbname"
        ) from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise DatabaseUnavailable(
            f"CRYPTOCAST_DATABASE_URL uses '{parsed.drivername}'; only PostgreSQL is supported (postgresql://...)"
        )
    return parsed.set(drivername="postgresql+asyncpg")


def sync_url(url: str | URL) -> URL:
    """The same URL for synchronous tools (psycopg is not a dependency, so keep asyncpg + greenlets)."""
    return async_url(url)


def describe(url: URL) -> str:
    """Where a URL points, without its password."""
    host = url.host or url.query.get("host") or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"{url.username or ''}@{host}{port}/{url.database or ''}"


def _root_cause(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrappers."""
    seen = exc
    while True:
        inner = getattr(seen, "orig", None) or seen.__cause__
        if inner is None or inner is seen:
            return seen
        seen = inner


def explain_connect_error(url: URL, exc: BaseException) -> DatabaseUnavailable:
    """Turn a driver exception into one line that says what to check."""
    cause = _root_cause(exc)
    where = describe(url)
    if isinstance(cause, asyncpg.InvalidPasswordError):
        hint = "wrong user or password"
    elif isinstance(cause, asyncpg.InvalidCatalogNameError):
        hint = f"database '{url.database}' does not exist (create it, or fix the name in the URL)"
    elif isinstance(cause, ConnectionRefusedError | OSError) and not isinstance(cause, socket.gaierror):
        hint = "connection refused: is PostgreSQL running and listening there?"
    elif isinstance(cause, socket.gaierror):
        hint = f"cannot resolve host '{url.host}'"
    elif isinstance(cause, TimeoutError | asyncio.TimeoutError):
        hint = f"no answer within {CONNECT_TIMEOUT_S} s"
    else:
        hint = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}".rstrip(": ")
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {where}: {hint} (check CRYPTOCAST_DATABASE_URL)"
    )


class Database:
    """The process's engine plus helpers for raw asyncpg work."""

    def __init__(
        self, url: str | URL, pool_size: int = 5, synchronous_commit: bool = True, pre_ping: bool = True
    ) -> None:
        """``synchronous_commit=False``: a commit returns before its WAL is flushed to disk. An
        operating-system crash may then lose the last fraction of a second of commits, never a
        commit in the middle: the database comes back as it was a moment before the crash. For
        writers that resume from what is stored (ingestion refetches from the exchange) that moment
        is as good as a kill at any other, and commits no longer queue behind disk flushes.

        ``pre_ping=False``: no ``SELECT 1`` round trip before each use of a pooled connection; for
        callers that hold their writes through a failed statement and try again anyway."""
        self.url = async_url(url)
        settings = {"timezone": "UTC"} | ({} if synchronous_commit else {"synchronous_commit": "off"})
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=pre_ping,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "server_settings": settings},
        )

    async def check(self) -> str:
        """Connect once and return the server version; raise :class:`DatabaseUnavailable` otherwise."""
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(text("SHOW server_version"))).scalar_one()
        except (TimeoutError, OperationalError, DBAPIError, OSError) as exc:
            raise explain_connect_error(self.url, exc) from exc

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled asyncpg connection (for COPY and LISTEN), returned to the pool afterwards."""
        async with self.engine.connect() as conn:
            fairy = await conn.get_raw_connection()
            yield fairy.driver_connection

    async def dispose(self) -> None:
        await self.engine.dispose()
