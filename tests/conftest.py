"""Shared fixtures: real PostgreSQL servers and a fresh, migrated database per test.

Two servers back the suite: the embedded one (the dev default, Unix socket) and, when
``CRYPTOCAST_TEST_DATABASE_URL`` is set (``make test`` starts Debian's PostgreSQL on 127.0.0.1 with
a password), a TCP server, the production path. In CI the TCP server is mandatory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from cryptocast.sql import migrate
from cryptocast.sql.database import Database, async_url
from cryptocast.sql.embedded import EmbeddedPostgres

TEMPLATE_DB = "cryptocast_test_template"
_counter = itertools.count()


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: URL, *statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: pytest prunes old base directories, which would pull the data
    # directory from under a server that another pytest process on the machine still runs.
    pg_dir = Path(tempfile.mkdtemp(prefix="cryptocast-test-pg-"))
    server = EmbeddedPostgres(pg_dir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(pg_dir, ignore_errors=True)


def _server_names() -> list[str]:
    names = ["embedded"]
    if os.environ.get("CRYPTOCAST_TEST_DATABASE_URL") or os.environ.get("CI"):
        names.append("tcp")
    return names


@pytest.fixture(scope="session")
def server_urls(embedded_server: EmbeddedPostgres) -> dict[str, URL]:
    urls = {"embedded": async_url(embedded_server.url)}
    tcp = os.environ.get("CRYPTOCAST_TEST_DATABASE_URL")
    if tcp:
        urls["tcp"] = async_url(tcp)
    elif os.environ.get("CI"):
        pytest.fail("CI must provide CRYPTOCAST_TEST_DATABASE_URL (run the suite with `make test`)")
    return urls


@pytest.fixture(scope="session")
def templates(server_urls: dict[str, URL]) -> dict[str, URL]:
    """A migrated template database on every server; per-test databases are cheap copies of it."""
    out = {}
    for name, url in server_urls.items():
        asyncio.run(
            _admin(
                url, f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}"
            )
        )
        template = url.set(database=TEMPLATE_DB)
        migrate.upgrade(template)
        out[name] = template
    return out


@pytest.fixture(params=_server_names())
async def db_url(request: pytest.FixtureRequest, templates: dict[str, URL]) -> AsyncIterator[URL]:
    """A fresh migrated database (dropped afterwards) on each available server."""
    server = request.param
    if server != "embedded" and request.node.get_closest_marker("embedded_only"):
        pytest.skip("long end-to-end test: runs on the embedded server only (the data layer runs on both)")
    if server not in templates:
        pytest.skip("no TCP PostgreSQL configured (set CRYPTOCAST_TEST_DATABASE_URL)")
    admin = templates[server].set(database="postgres")
    name = f"cctest_{os.getpid()}_{next(_counter)}"
    await _admin(admin, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield admin.set(database=name)
    await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def db(db_url: URL) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def blank_db_url(server_urls: dict[str, URL]) -> Iterator[URL]:
    """An empty (unmigrated) database on the embedded server, for migration tests."""
    admin = server_urls["embedded"]
    name = f"ccblank_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(admin, f"CREATE DATABASE {name}"))
    yield make_url(admin).set(database=name)
    asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
