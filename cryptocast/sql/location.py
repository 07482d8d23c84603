"""Where the database is: the configured URL, or the embedded server started on demand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import URL, make_url

from cryptocast.settings import Settings
from cryptocast.sql.database import async_url
from cryptocast.sql.embedded import EmbeddedPostgres


@contextmanager
def database_url(settings: Settings) -> Iterator[URL]:
    """Yield the database URL, starting the embedded server when no URL is configured.

    The embedded server's socket URL is exported as ``CRYPTOCAST_DATABASE_URL`` for the lifetime of
    the block, so processes started from here (Ray workers, Serve replicas) join the same server.
    """
    settings.require_database_url()
    if settings.database_url is not None:
        yield async_url(settings.database_url.get_secret_value())
        return
    embedded = EmbeddedPostgres(settings.pg_dir)
    url = embedded.start()
    previous = os.environ.get("CRYPTOCAST_DATABASE_URL")
    os.environ["CRYPTOCAST_DATABASE_URL"] = url.render_as_string(hide_password=False)
    try:
        yield make_url(url)
    finally:
        if previous is None:
            os.environ.pop("CRYPTOCAST_DATABASE_URL", None)
        else:
            os.environ["CRYPTOCAST_DATABASE_URL"] = previous
        embedded.stop()
