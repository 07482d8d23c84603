"""One real Serve deployment for the package: Ray on loopback, a migrated database, the replay exchange.

Starting Ray and Serve costs tens of seconds on two cores, so the serving tests share one instance
(package scope) and one database on the embedded server. So that none depends on another having run
before it, a test that changes shared state sets up what it needs and undoes it through the
fixtures below: pairs of its own (``own_pairs``), an empty command queue (``no_commands``), and the
pair's newest candle already forecast (``settled``, with ``candles_after_newest`` to go on from it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.engine import URL

from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.records import Candle
from cryptocast.serve.config import ServeOptions
from cryptocast.sql.database import Database
from cryptocast.sql.schema import commands, gaps, models, predictions, price_history, symbols, top_of_book
from cryptocast.tune.registry import ModelStore
from tests.helpers import eventually, free_port, scratch_database
from tests.tune.tune_data import btc, load_pair, to_records

PAIR = "BTCUSDT"
TOKEN = "serve-tests-token-0123456789"
# The served URL carries a password, as a production URL does (the embedded server trusts its socket
# and ignores it), so the tests can look for it wherever Ray and Serve record things.
DB_PASSWORD = "serve-tests-db-password-7d1e94b2"
HISTORY_DAYS = 0.5  # 720 minutes: enough for the persistence baseline and a few hours of scoring
CONTINUATION_DAYS = 1.0  # the recorded minutes the tests append to PAIR's history come from here
SETTLE_TIMEOUT_S = 30.0


@dataclass
class Served:
    url: str
    db: Database
    db_url: str
    options: ServeOptions
    store: ModelStore
    replay: ReplayServer
    symbol_id: int


@pytest.fixture(scope="package")
async def served(
    templates: dict[str, URL], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    from cryptocast.actors.ray_runtime import start_ray, stop_ray
    from cryptocast.serve.deploy import api_url, deploy, stop_serving
    from cryptocast.tune.baseline import ensure_baseline

    template = templates["embedded"]
    async with scratch_database(template, "ccserve", template=template.database) as scratch:
        db_url = scratch.set(password=DB_PASSWORD)
        db = Database(db_url)
        try:
            store = ModelStore(str(tmp_path_factory.mktemp("models")))
            sid = await load_pair(db, PAIR, btc(HISTORY_DAYS))
            await ensure_baseline(db, store, sid)
            replay_config = ReplayConfig(speed=60.0, pairs=["BTCUSDT", "ETHUSDT"], history_ms=3_600_000)
            async with ReplayServer(replay_config) as replay:
                url_text = db_url.render_as_string(hide_password=False)
                options = ServeOptions(
                    store.root,
                    replay.rest_url,
                    replay.stream_url,
                    port=free_port(),
                    database_url=url_text,
                    skill_min_samples=30,
                )
                previous = os.environ.get("CRYPTOCAST_API_TOKEN")
                os.environ["CRYPTOCAST_API_TOKEN"] = TOKEN  # replicas inherit it: POST/DELETE need the token
                start_ray(num_cpus=2)
                try:
                    await deploy(db, options)
                    yield Served(api_url(options), db, url_text, options, store, replay, sid)
                finally:
                    stop_serving()
                    stop_ray()
                    if previous is None:
                        os.environ.pop("CRYPTOCAST_API_TOKEN", None)
                    else:
                        os.environ["CRYPTOCAST_API_TOKEN"] = previous
        finally:
            await db.dispose()


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        yield http


async def _clear_commands(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(commands))


@pytest.fixture
async def no_commands(served: Served) -> AsyncIterator[None]:
    """An empty command queue for the test, emptied again afterwards (whatever the test asked for)."""
    await _clear_commands(served.db)
    yield
    await _clear_commands(served.db)


async def purge_pair(db: Database, symbol: str) -> None:
    """Delete ``symbol`` and everything stored for it, as a carried-out ``purge_pair`` does."""
    async with db.begin() as conn:
        sid = (await conn.execute(select(symbols.c.id).where(symbols.c.symbol == symbol))).scalar()
        if sid is None:
            return
        for table in (predictions, models, price_history, top_of_book, gaps):
            await conn.execute(delete(table).where(table.c.symbol_id == sid))
        await conn.execute(delete(symbols).where(symbols.c.id == sid))


@pytest.fixture
async def own_pairs(served: Served) -> AsyncIterator[Callable[[str], str]]:
    """``own(symbol)`` marks a pair the test adds beside ``PAIR`` (and returns the symbol); each is
    deleted afterwards, data and all, so no other test sees it."""
    marked: list[str] = []

    def own(symbol: str) -> str:
        marked.append(symbol)
        return symbol

    yield own
    for symbol in marked:
        await purge_pair(served.db, symbol)


async def _newest_forecast(served: Served) -> datetime | None:
    """The pair's newest candle, once its prediction is stored (the predictor is idle then)."""
    newest_candle = select(func.max(price_history.c.open_time)).where(
        price_history.c.symbol_id == served.symbol_id
    )
    newest_served = select(func.max(predictions.c.origin_time)).where(
        predictions.c.symbol_id == served.symbol_id, predictions.c.served
    )
    async with served.db.connect() as conn:
        candle = (await conn.execute(newest_candle)).scalar_one()
        predicted = (await conn.execute(newest_served)).scalar_one()
    return candle if candle is not None and candle == predicted else None


@pytest.fixture
async def settled(served: Served) -> datetime:
    """``PAIR``'s newest candle once its forecast is stored: whatever candles earlier tests wrote
    have been predicted, so nothing of theirs is still on its way."""
    return await eventually(
        lambda: _newest_forecast(served),
        f"the forecast of {PAIR}'s newest candle stored",
        timeout_s=SETTLE_TIMEOUT_S,
        every_s=0.25,
    )


async def candles_after_newest(served: Served, count: int) -> list[Candle]:
    """The ``count`` recorded ``PAIR`` minutes right after its newest stored candle: what a test
    appends to the history goes on from whatever the tests before it appended."""
    async with served.db.connect() as conn:
        newest = (
            await conn.execute(
                select(func.max(price_history.c.open_time)).where(
                    price_history.c.symbol_id == served.symbol_id
                )
            )
        ).scalar_one()
    following = [c for c in to_records(btc(CONTINUATION_DAYS)) if c.open_time > newest.timestamp() * 1000]
    assert len(following) >= count, f"the recording has {len(following)} minutes after {newest}, not {count}"
    return following[:count]
