"""News on NOTIFY channels: delivered to the channel's handler, and heard again after the connection dies."""

from __future__ import annotations

import asyncio
import contextlib
import json

from sqlalchemy.engine import URL

from cryptocast.sql.database import Database
from cryptocast.sql.notices import listen
from cryptocast.sql.schema import CANDLES_CHANNEL, PREDICTIONS_CHANNEL
from tests.helpers import eventually

RETRY_S = 0.1
HEARD_TIMEOUT_S = 10.0
POLL_S = 0.02


async def test_news_reaches_its_handler_and_survives_a_dropped_connection(db_url: URL, db: Database) -> None:
    heard: list[tuple[str, dict]] = []
    events: list[str] = []

    async def connected() -> None:
        events.append("connected")

    def lost(reason: str) -> None:
        events.append(reason)

    handlers = {
        CANDLES_CHANNEL: lambda n: heard.append(("candles", n)),
        PREDICTIONS_CHANNEL: lambda n: heard.append(("predictions", n)),
    }
    task = asyncio.get_running_loop().create_task(listen(db_url, handlers, connected, lost, retry_s=RETRY_S))
    try:
        await eventually(
            lambda: events,
            "the listener connected",
            timeout_s=HEARD_TIMEOUT_S,
            every_s=POLL_S,
            until=lambda seen: seen == ["connected"],
        )
        await _notify(db, PREDICTIONS_CHANNEL, {"symbol": "BTCUSDT", "origin_time": 1})
        await _notify(db, CANDLES_CHANNEL, {"symbol": "ETHUSDT", "open_time": 2})
        await eventually(
            lambda: heard,
            "both notices heard",
            timeout_s=HEARD_TIMEOUT_S,
            every_s=POLL_S,
            until=lambda seen: len(seen) == 2,
        )
        assert heard == [
            ("predictions", {"symbol": "BTCUSDT", "origin_time": 1}),
            ("candles", {"symbol": "ETHUSDT", "open_time": 2}),
        ]

        async with db.raw() as conn:  # the listener's connection dies (a restart, a failover)
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'"
            )
        assert killed == 1
        await eventually(
            lambda: events,
            "the listener connected again",
            timeout_s=HEARD_TIMEOUT_S,
            every_s=POLL_S,
            until=lambda seen: seen[-1:] == ["connected"] and len(seen) == 3,
        )
        assert events[1].startswith("listener: ")  # told, so whatever relied on the news stops relying on it
        await _notify(db, CANDLES_CHANNEL, {"symbol": "ETHUSDT", "open_time": 3})
        await eventually(
            lambda: heard,
            "the notice after the reconnection heard",
            timeout_s=HEARD_TIMEOUT_S,
            every_s=POLL_S,
            until=lambda seen: len(seen) == 3,
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _notify(db: Database, channel: str, payload: dict) -> None:
    async with db.raw() as conn:
        await conn.execute("SELECT pg_notify($1, $2)", channel, json.dumps(payload))
