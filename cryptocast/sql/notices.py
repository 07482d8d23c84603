"""News on NOTIFY channels, for as long as a process lives: LISTEN again after the database comes back.

A notification sent while nobody listens is gone, so a listener that (re)connects is told so
(``connected``) and catches up from the tables; a lost connection is reported (``lost``) so that
whatever relied on the news can stop relying on it until then.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from sqlalchemy.engine import URL

from cryptocast.sql.database import async_url

log = logging.getLogger(__name__)

RETRY_S = 2.0
Handler = Callable[[dict], None]


def dsn(url: str | URL) -> str:
    """The database URL as asyncpg's own ``connect`` takes it (LISTEN holds a connection of its own)."""
    return async_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    url: str | URL,
    handlers: Mapping[str, Handler],
    connected: Callable[[], Awaitable[object]] | None = None,
    lost: Callable[[str], None] | None = None,
    retry_s: float = RETRY_S,
) -> None:
    """Hand each channel's JSON payloads to its handler, forever; run it as a task and cancel it."""

    def deliver(_conn: object, _pid: int, channel: str, payload: str) -> None:
        handlers[channel](json.loads(payload))

    while True:
        conn = None
        try:
            conn = await asyncpg.connect(dsn(url))
            for channel in handlers:
                await conn.add_listener(channel, deliver)
            if connected is not None:
                await connected()
            while not conn.is_closed():
                await asyncio.sleep(retry_s)
            raise ConnectionError("the LISTEN connection closed")
        except Exception as exc:  # database away: listen again once it is back
            reason = f"listener: {type(exc).__name__}: {exc}"
            log.warning("%s", reason)
            if lost is not None:
                lost(reason)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()
        await asyncio.sleep(retry_s)
