"""One real Serve deployment for the module: Ray on loopback, a migrated database, the replay exchange.

Starting Ray and Serve costs tens of seconds on two cores, so the serving tests share one instance
(module scope) and one database on the embedded server; each test uses its own pairs where it
changes state.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.serve.config import ServeOptions
from cryptocast.sql.database import Database
from cryptocast.tune.registry import ModelStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tune"))
from tune_data import btc, load_pair, to_records  # noqa: E402, F401

from tests.conftest import _admin  # noqa: E402

PAIR = "BTCUSDT"
TOKEN = "serve-tests-token-0123456789"
# The served URL carries a password, as a production URL does (the embedded server trusts its socket
# and ignores it), so the tests can look for it wherever Ray and Serve record things.
DB_PASSWORD = "serve-tests-db-password-7d1e94b2"
HISTORY_DAYS = 0.5  # 720 minutes: enough for the persistence baseline and a few hours of scoring


@dataclass
class Served:
    url: str
    db: Database
    db_url: str
    options: ServeOptions
    store: ModelStore
    replay: ReplayServer
    symbol_id: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
async def served(templates: dict[str, URL], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    from cryptocast.actors.ray_runtime import start_ray, stop_ray
    from cryptocast.serve.deploy import api_url, deploy, stop_serving
    from cryptocast.tune.pipeline import ensure_baseline

    admin = templates["embedded"].set(database="postgres")
    name = f"ccserve_{os.getpid()}"
    await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name} TEMPLATE {templates['embedded'].database}")
    db_url = admin.set(database=name, password=DB_PASSWORD)
    db = Database(db_url)
    store = ModelStore(str(tmp_path_factory.mktemp("models")))
    sid = await load_pair(db, PAIR, btc(HISTORY_DAYS))
    await ensure_baseline(db, store, sid)
    async with ReplayServer(ReplayConfig(speed=60.0, pairs=["BTCUSDT", "ETHUSDT"], history_ms=3_600_000)) as replay:
        url_text = db_url.render_as_string(hide_password=False)
        options = ServeOptions(store.root, replay.rest_url, replay.stream_url, port=free_port(),
                               database_url=url_text, skill_min_samples=30)  # fmt: skip
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
            await db.dispose()
            await _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        yield http


async def eventually(check, timeout: float = 60.0, every: float = 0.25):  # noqa: ANN001, ANN201
    """Poll an async ``check`` until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout:.0f} s (last: {value!r})")
        await asyncio.sleep(every)


__all__ = ["Served", "eventually", "to_records", "PAIR", "TOKEN", "DB_PASSWORD"]
