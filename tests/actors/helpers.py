"""Ingestion fixtures: a replay exchange in-process, a pair row, a runner for one ingestor, and waits
for its progress."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from cryptocast.actors.budget import LocalBudget
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from tests.helpers import eventually

HOUR_MS = 60 * MINUTE_MS


@asynccontextmanager
async def running(ingestor: PairIngestor) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until_live(ingestor: PairIngestor, timeout_s: float = 30.0) -> None:
    """Wait for the ingestor's backfill to end and its stream to run (state ``live``)."""
    await eventually(
        lambda: ingestor.state,
        f"{ingestor.symbol} live",
        timeout_s=timeout_s,
        until=lambda state: state == "live",
    )


async def until_stored(ingestor: PairIngestor, minute_ms: int, timeout_s: float = 30.0) -> None:
    """Wait for the ingestor to have stored the candle of ``minute_ms`` (or a later one)."""
    await eventually(
        lambda: ingestor.last_stored or 0,
        f"{ingestor.symbol} stored up to {minute_ms}",
        timeout_s=timeout_s,
        until=lambda stored: stored >= minute_ms,
    )


async def stored_open_times(db: Database, symbol: str) -> list[int]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT (extract(epoch FROM open_time) * 1000)::bigint FROM price_history p "
                "JOIN symbols s ON s.id = p.symbol_id WHERE s.symbol = :s ORDER BY open_time"
            ),
            {"s": symbol},
        )
        return [r[0] for r in rows]


def gaps_in(times: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(times) if b - a != MINUTE_MS]


@asynccontextmanager
async def ingest_setup(
    db: Database,
    symbol: str = "BTCUSDT",
    *,
    speed: float = 600.0,
    history_ms: int = 6 * HOUR_MS,
    config: IngestConfig | None = None,
    **replay_kwargs: object,
) -> AsyncIterator[tuple[ReplayServer, PairIngestor]]:
    async with ReplayServer(
        ReplayConfig(speed=speed, pairs=[symbol], history_ms=history_ms, **replay_kwargs)
    ) as server:  # type: ignore[arg-type]
        base, quote = (symbol[:-4], symbol[-4:]) if symbol.endswith("USDT") else (symbol[:-3], symbol[-3:])
        await add_symbol(db, symbol, base, quote)
        async with BinanceExchange(rest_url=server.rest_url, stream_url=server.stream_url) as exchange:
            ingestor = PairIngestor(
                symbol, db, exchange, LocalBudget(), config or IngestConfig(lookback_ms=None)
            )
            yield server, ingestor
