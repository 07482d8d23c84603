"""The whole system on the replay exchange, for the browser tests and the benchmark.

Real components only: PostgreSQL, Ray with the ingestion supervisor and the training scheduler
(started by :func:`cryptocast.system.start_background`, as ``cryptocast up`` starts them), Serve
with the API, the replay exchange at high speed and the dashboard in its thread. Pairs are added
the way a user adds them (command rows the supervisor carries out), so backfill, baseline model,
the live prediction loop and the training queue all run as in ``cryptocast up``. The replay has
less history than the 10 days a first LSTM needs (``HISTORY_MS`` plus under a week: its time shifts
are whole weeks), so a retrain asked for here fails, with that reason.

The API runs with a token (``API_TOKEN``), as outside dev mode: the dashboard has none of its own,
so a change from the page needs a viewer who signed in with it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from dash import Dash
from sqlalchemy.engine import URL
from werkzeug.serving import make_server

from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.records import MINUTE_MS
from cryptocast.serve.config import ServeOptions
from cryptocast.settings import Settings
from cryptocast.sql.database import Database
from cryptocast.sql.queries import submit_command
from tests.helpers import eventually, free_port

FIRST_PAIR = "BTCUSDT"
SECOND_PAIR = "ETHUSDT"  # added through the dashboard's form by the tests
SPEED = 60.0  # a candle closes every second
HISTORY_MS = 5 * 60 * MINUTE_MS  # enough for the persistence baseline (240 minutes)
READY_TIMEOUT_S = 180.0
MINUTES_PER_DAY = 1440
API_TOKEN = "dashboard-tests-api-token-7f3a9c"
TOKEN_ENV = "CRYPTOCAST_API_TOKEN"


@dataclass
class System:
    api_url: str
    dashboard_url: str
    replay: ReplayServer
    db: Database


def system_settings(replay: ReplayServer, data_dir: Path) -> Settings:
    """The settings ``up`` would read for this replay: a free API port, every pair's whole history,
    tiny trainings and a daily slot a whole exchange day away (the minute just past), so no training
    runs that the tests did not ask for."""
    slot = (replay.clock.now() // MINUTE_MS - 1) % MINUTES_PER_DAY
    return Settings(
        replay_port=replay.port,
        api_port=free_port(),
        lookback_days=None,
        data_dir=data_dir,
        train_trials=1,
        train_epochs=1,
        train_daily_minute=slot,
    )


async def _has_forecast(api_url: str, symbol: str) -> bool:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        return (await http.get(f"/pairs/{symbol}/predictions/latest")).status_code == 200


@contextmanager
def api_token_set() -> Iterator[None]:
    """``API_TOKEN`` in the environment, which the API's replicas inherit, restored afterwards."""
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = API_TOKEN
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous


@asynccontextmanager
async def whole_system(db_url: URL, speed: float = SPEED) -> AsyncIterator[System]:
    """Everything up with ``FIRST_PAIR`` live and forecasting, the API asking ``API_TOKEN`` for
    changes; torn down in reverse order."""
    from cryptocast.actors.ray_runtime import start_ray, stop_ray
    from cryptocast.dashboard.server import start_dashboard, stop_dashboard
    from cryptocast.serve.deploy import api_url, deploy, stop_serving
    from cryptocast.system import start_background, stop_background

    db = Database(db_url)
    url_text = db_url.render_as_string(hide_password=False)
    plain_url = db_url.set(drivername="postgresql").render_as_string(hide_password=False)
    config = ReplayConfig(speed=speed, pairs=[FIRST_PAIR, SECOND_PAIR], history_ms=HISTORY_MS)
    with api_token_set(), tempfile.TemporaryDirectory(prefix="cryptocast-dash-") as data_dir:
        async with ReplayServer(config) as replay:
            await submit_command(db, "add_pair", FIRST_PAIR)
            settings = system_settings(replay, Path(data_dir))
            start_ray(num_cpus=2)
            try:
                options = ServeOptions.from_settings(settings, url_text)
                await deploy(db, options)  # Serve first: its proxy starts slowly on a busy machine
                background = start_background(settings, plain_url)
                try:
                    await eventually(
                        lambda: _has_forecast(api_url(options), FIRST_PAIR),
                        "first forecast",
                        timeout_s=READY_TIMEOUT_S,
                        every_s=0.5,
                    )
                    dashboard = start_dashboard(settings, api_url(options), port=0)
                    try:
                        yield System(api_url(options), dashboard, replay, db)
                    finally:
                        stop_dashboard()
                finally:
                    await asyncio.to_thread(stop_background, background)
            finally:
                stop_serving()
                stop_ray()
                await db.dispose()


@contextmanager
def serving(app: Dash) -> Iterator[str]:
    """A dashboard app of the test's own (another API URL) on a free port in a thread; its URL."""
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
