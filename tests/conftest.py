"""Shared fixtures: real PostgreSQL servers and a fresh, migrated database per test.

Two servers back the suite: the embedded one (the dev default, Unix socket) and, when
``CRYPTOCAST_TEST_DATABASE_URL`` is set (``make test`` starts Debian's PostgreSQL on 127.0.0.1 with
a password), a TCP server, the production path. In CI the TCP server is mandatory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from cryptocast.sql import migrate
from cryptocast.sql.database import Database, async_url
from cryptocast.sql.embedded import EmbeddedPostgres
from tests.helpers import scratch_database


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep pytest-randomly's order, but each test folder's tests together, folders in the order
    they first appear.

    Why: the serve and dashboard folders share one running system per folder (package fixtures).
    Interleaving their modules would start it again at every switch and double the suite's time,
    while the order within a folder, and of the folders, stays random.
    """
    first: dict[Path, int] = {}
    for position, item in enumerate(items):
        first.setdefault(item.path.parent, position)
    items.sort(key=lambda item: first[item.path.parent])


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
async def templates(server_urls: dict[str, URL]) -> AsyncIterator[dict[str, URL]]:
    """A migrated template database on every server; per-test databases are cheap copies of it."""
    async with AsyncExitStack() as stack:
        out = {}
        for name, url in server_urls.items():
            template = await stack.enter_async_context(scratch_database(url, "cctemplate"))
            await asyncio.to_thread(migrate.upgrade, template)
            out[name] = template
        yield out


@pytest.fixture(params=_server_names())
async def db_url(request: pytest.FixtureRequest, templates: dict[str, URL]) -> AsyncIterator[URL]:
    """A fresh migrated database (dropped afterwards) on each available server."""
    server = request.param
    if server != "embedded" and request.node.get_closest_marker("embedded_only"):
        pytest.skip("long end-to-end test: runs on the embedded server only (the data layer runs on both)")
    if server not in templates:
        pytest.skip("no TCP PostgreSQL configured (set CRYPTOCAST_TEST_DATABASE_URL)")
    template = templates[server]
    async with scratch_database(template, "cctest", template=template.database) as url:
        yield url


@pytest.fixture
async def db(db_url: URL) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def blank_db_url(server_urls: dict[str, URL]) -> AsyncIterator[URL]:
    """An empty (unmigrated) database on the embedded server, for migration tests."""
    async with scratch_database(server_urls["embedded"], "ccblank") as url:
        yield url
