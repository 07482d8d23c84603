"""The embedded PostgreSQL server used when no ``CRYPTOCAST_DATABASE_URL`` is set.

Backed by the ``pgserver`` wheel (PostgreSQL 16 binaries in site-packages). It listens on a Unix
socket only, never on TCP, so the dev default exposes nothing. The process that starts it owns it;
other processes (Ray actors, Serve replicas) connect through the socket URL it publishes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from pgserver import PostgresServer

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start (or join) the server in ``pg_dir`` and stop it on :meth:`stop` when this process owns it."""

    def __init__(self, pg_dir: Path) -> None:
        self.pg_dir = pg_dir.resolve()
        self._server: PostgresServer | None = None

    def start(self) -> URL:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells)
            warnings.simplefilter("ignore")
            import pgserver

        self.pg_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pg_dir, cleanup_mode="stop")
        url = self.url
        log.info("embedded PostgreSQL ready", extra={"socket_dir": url.query.get("host")})
        return url

    @property
    def url(self) -> URL:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return make_url(self._server.get_uri()).set(drivername="postgresql")

    @property
    def pid(self) -> int | None:
        return self._server.get_pid() if self._server is not None else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
