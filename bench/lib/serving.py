"""The serving benchmark (``bench/serve.py``): API throughput and latency against a no-op floor.

What the API costs is judged against what Ray Serve itself costs on the same machine: the targets
(``TARGETS``) are ratios of a no-op deployment's throughput and p99 bounds at concurrency 16, plus
the candle close → stored prediction latency while the API is loaded.

One run per Serve configuration ("default"; "tuned", Serve's throughput options; "direct", those
plus direct ingress: clients reach the router's replica on its own loopback port, skipping the
proxy, and the floor's likewise), each on a fresh Ray and a scratch database. The read pair is
backfilled from the replay exchange and left idle; then two pairs go live from a second replay at
60x, through the real supervisor. Each phase (idle, live) loads, on loopback and at several
concurrencies: a no-op Serve deployment behind the same proxy (the floor), a no-op FastAPI ingress
(what Serve's FastAPI integration alone costs), the latest prediction, one day of candles, and
on-demand predict from the caller's window. In the live phase every closed candle is timed to its
stored prediction. The load comes from ``wrk`` when installed, else from a Python loop (see
:mod:`bench.lib.loadgen`).

The two no-op applications are deployed from this module (``bench.lib.serving:noop_app``), which is
not part of the installed package: their ``runtime_env`` puts the repository root on the replicas'
``PYTHONPATH`` so that Serve's build task and replicas can import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import asyncpg
import httpx
from fastapi import FastAPI, Response
from ray import serve
from ray.actor import ActorHandle
from sqlalchemy.engine import URL

from bench.lib.harness import (
    SHUTDOWN_TIMEOUT_S,
    dsn,
    machine,
    python_path,
    replay_process,
    scratch_database,
    statuses,
    until,
)
from bench.lib.loadgen import WRK, Target, percentile, run_load, run_wrk
from cryptocast.actors.budget import LocalBudget, RateBudget
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.actors.ray_runtime import start_ray, stop_ray
from cryptocast.actors.supervisor import start_supervisor
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.clock import ReplayClock
from cryptocast.exchange.recordings import split_symbol
from cryptocast.exchange.server import ReplayConfig
from cryptocast.records import MINUTE_MS
from cryptocast.serve.config import ROUTER_APP, ServeOptions, generate
from cryptocast.serve.deploy import (
    DIRECT_INGRESS_ENV,
    api_url,
    apply_config,
    direct_ingress_url,
    start_controller,
    stop_serving,
    wait_running,
)
from cryptocast.serve.live import LIVE_DEPLOYMENT
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol, submit_command
from cryptocast.sql.schema import CANDLES_CHANNEL
from cryptocast.tune.baseline import ensure_baseline
from cryptocast.tune.registry import ModelStore

BENCH_DB = "cryptocast_bench_serve"
READ_PAIR = "BTCUSDT"
LIVE_SOURCE = "ETHUSDT"  # two live pairs: it and one clone
LIVE_PAIRS = [LIVE_SOURCE, f"{LIVE_SOURCE}_C01"]
DAY_MS = 24 * 60 * MINUTE_MS
READ_LOOKBACK_MS = 2 * DAY_MS  # one day to read back, plus the baseline's calibration
LIVE_LOOKBACK_MS = 300 * MINUTE_MS  # enough for a persistence baseline (240 minutes)
LIVE_SPEED = 60.0
NO_WEIGHT_LIMIT = 10**12
CONCURRENCY = (1, 16, 64)
CELL_SECONDS = 4.0
CELL_MAX_REQUESTS = 3000  # the Python loop's bound; wrk runs for the cell's seconds
WARMUP_SECONDS = 1.0
PREDICT_WINDOW = 240  # minutes the caller sends to /predict
LIVE_READY_TIMEOUT_S = 240.0
QUIET_SECONDS = 45.0  # after the load: ~45 more candles at 60x, timed with nothing else asked
BUILDERS = "bench.lib.serving"  # the import path of this module, where Serve finds the no-op builders
NOOP_APP, NOOP_ROUTE = "bench_noop", "/bench-noop"
INGRESS_APP, INGRESS_ROUTE = "bench_noop_ingress", "/bench-noop-ingress"
PORT = 8765
CONFIGS = ("default", "tuned", "direct")
# Serve's throughput options; workers inherit them from the driver's environment. "tuned" keeps
# the proxy as the only HTTP server; "direct" adds direct ingress (a loopback port per ingress
# replica, found through the controller).
TUNED_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    DIRECT_INGRESS_ENV: "0",
}
ENV = {"default": {}, "tuned": TUNED_ENV, "direct": TUNED_ENV | {DIRECT_INGRESS_ENV: "1"}}
TUNED_MAX_ONGOING = 256
TARGETS = {  # ratio of the floor's throughput wanted, and the p99 bound, at concurrency 16
    "latest": {"ratio": 0.7, "p99_ms": 50.0},
    "candles_day": {"ratio": 0.25},
}
PREDICT_P99_MS = 50.0
CLOSE_TO_STORED_P99_MS = 250.0


@serve.deployment(ray_actor_options={"num_cpus": 0.01})
class Noop:
    """The floor: what the proxy and one replica cost with no work behind them."""

    async def __call__(self, _request: object) -> str:
        return "ok"


noop_api = FastAPI()


@serve.deployment(ray_actor_options={"num_cpus": 0.01})
@serve.ingress(noop_api)
class NoopIngress:
    """A second reference: a FastAPI ingress whose one route (the latest prediction's path, with
    its path parameter) does nothing. It is what Serve's FastAPI integration costs before any of
    the API's own code, which the bare floor above does not pay."""

    @noop_api.get("/pairs/{symbol}/predictions/latest")
    async def latest(self, symbol: str) -> Response:
        return Response(b'{"symbol":"' + symbol.encode() + b'"}', media_type="application/json")


def noop_app(args: dict) -> serve.Application:
    return Noop.options(max_ongoing_requests=int(args["max_ongoing_requests"])).bind()


def noop_ingress_app(args: dict) -> serve.Application:
    return NoopIngress.options(max_ongoing_requests=int(args["max_ongoing_requests"])).bind()


def noop_applications(tuned: bool) -> list[dict]:
    """The floor and the FastAPI reference, with the same Serve options.

    Their builders live here, outside the installed package: the repository root goes on the
    ``PYTHONPATH`` of the processes Serve imports them in (the build task and the replicas).
    """
    apps = []
    runtime_env = {"env_vars": {"PYTHONPATH": python_path()}}
    for name, route, builder in (
        (NOOP_APP, NOOP_ROUTE, "noop_app"),
        (INGRESS_APP, INGRESS_ROUTE, "noop_ingress_app"),
    ):
        app = {
            "name": name,
            "route_prefix": route,
            "import_path": f"{BUILDERS}:{builder}",
            "runtime_env": runtime_env,
            "args": {"max_ongoing_requests": TUNED_MAX_ONGOING if tuned else 5},
        }
        if tuned:
            app["logging_config"] = {"enable_access_log": False}
        apps.append(app)
    return apps


async def backfill(db: Database, rest_url: str, stream_url: str, symbol: str, lookback_ms: int) -> None:
    """Backfill ``symbol`` with the real ingestor, then pause it: stored, served, not ingested."""
    await add_symbol(db, symbol, *split_symbol(symbol))
    exchange = BinanceExchange(rest_url=rest_url, stream_url=stream_url)
    ingestor = PairIngestor(
        symbol,
        db,
        exchange,
        LocalBudget(RateBudget(weight_limit=NO_WEIGHT_LIMIT)),
        IngestConfig(lookback_ms=lookback_ms),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        while ingestor.state != "live":
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await exchange.close_connection()
    async with db.raw() as conn:  # the supervisor leaves paused pairs alone
        await conn.execute("UPDATE symbols SET status = 'paused' WHERE symbol = $1", symbol)


async def read_targets(client: httpx.AsyncClient) -> dict[str, Target]:
    candles = (await client.get(f"/pairs/{READ_PAIR}/candles", params={"limit": PREDICT_WINDOW})).json()
    window = [
        {"open_time": MINUTE_MS * i, "open": c[1], "high": c[2], "low": c[3], "close": c[4], "volume": c[5]}
        for i, c in enumerate(candles["candles"])
    ]
    end = candles["end"]
    day = {"start": _minus_day(end), "end": end, "limit": 1440}
    return {
        "floor_noop": Target("floor_noop", "GET", NOOP_ROUTE),
        "ingress_noop": Target(
            "ingress_noop", "GET", f"{INGRESS_ROUTE}/pairs/{READ_PAIR}/predictions/latest"
        ),
        "latest": Target("latest", "GET", f"/pairs/{READ_PAIR}/predictions/latest"),
        "candles_day": Target(
            "candles_day",
            "GET",
            f"/pairs/{READ_PAIR}/candles",
            params=day,
            headers={"Accept-Encoding": "gzip"},
        ),
        "predict": Target("predict", "POST", f"/pairs/{READ_PAIR}/predict", json={"candles": window}),
    }


def _minus_day(iso: str) -> str:
    return (datetime.fromisoformat(iso) - timedelta(days=1)).isoformat()


LOADERS = ("wrk", "httpx")


async def measure(base_url: str, target: Target, concurrency: int, seconds: float, loader: str) -> dict:
    if loader == "wrk":
        return await run_wrk(base_url, target, concurrency, seconds)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await run_load(client, target, concurrency, seconds, CELL_MAX_REQUESTS)


async def load_phase(targets: dict[str, Target], bases: dict[str, str], loader: str) -> dict:
    """Every target at every concurrency (predict at 1), after a short warm-up of each."""
    out: dict[str, dict] = {}
    for name, target in targets.items():
        await measure(bases[name], target, 1, WARMUP_SECONDS, loader)
        levels = (1,) if name == "predict" else CONCURRENCY
        out[name] = {str(c): await measure(bases[name], target, c, CELL_SECONDS, loader) for c in levels}
    used = {cell["client"] for cells in out.values() for cell in cells.values()}
    if used != {loader}:
        raise RuntimeError(f"the cells were loaded by {sorted(used)}, not by {loader}")
    return out


async def target_bases(config: str, options: ServeOptions, targets: dict[str, Target]) -> dict[str, str]:
    """Where each target is loaded: the proxy, or with direct ingress the application's replica."""
    if config != "direct":
        return dict.fromkeys(targets, api_url(options))
    router = await direct_ingress_url(ROUTER_APP, options.port)
    own = {
        "floor_noop": await direct_ingress_url(NOOP_APP, options.port),
        "ingress_noop": await direct_ingress_url(INGRESS_APP, options.port),
    }
    return {name: own.get(name, router) for name in targets}


def verdict(phase: dict) -> dict:
    """The acceptance figures of one phase, next to their targets."""
    floor = phase["floor_noop"]["16"]["rps"]
    ingress = phase["ingress_noop"]["16"]["rps"]
    out = {
        "floor_rps_c16": floor,
        "floor_rps_c1": phase["floor_noop"]["1"]["rps"],
        "ingress_noop_rps_c16": ingress,
        "ingress_noop_ratio_to_floor": round(ingress / floor, 3),
    }
    for name, want in TARGETS.items():
        cell = phase[name]["16"]
        out[name] = {
            "rps_c16": cell["rps"],
            "ratio_to_floor": round(cell["rps"] / floor, 3),
            "ratio_to_ingress_noop": round(cell["rps"] / ingress, 3),
            "p99_ms_c16": cell["p99_ms"],
            "target_ratio": want["ratio"],
            "target_p99_ms": want.get("p99_ms"),
            "wire_bytes_per_s_c16": cell["wire_bytes_per_s"],
        }
    out["predict"] = {"p99_ms_c1": phase["predict"]["1"]["p99_ms"], "target_p99_ms": PREDICT_P99_MS}
    return out


class Closes:
    """Wall time each live candle's NOTIFY reached the benchmark, by (symbol, open time)."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, int], float] = {}

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        note = json.loads(payload)
        if note["count"] == 1:
            self.at.setdefault((note["symbol"], note["open_time"]), time.time())


_STORED_SQL = """
SELECT s.symbol, (extract(epoch FROM p.origin_time) * 1000)::bigint AS origin, extract(epoch FROM min(p.made_at))::float8 AS made
FROM predictions p JOIN symbols s ON s.id = p.symbol_id
WHERE p.served AND NOT p.late AND s.symbol = ANY($1)
  AND p.origin_time >= to_timestamp($2 / 1000.0) AND p.origin_time + interval '1 minute' <= to_timestamp($3 / 1000.0)
GROUP BY 1, 2
"""


async def close_to_stored(
    db_url: URL, closes: Closes, clock: ReplayClock, since_ms: int, until_ms: int
) -> dict:
    """Candle commit (NOTIFY) → prediction row, and exchange close → prediction row, in ms, for the
    candles that opened from ``since_ms`` and closed by ``until_ms`` (exchange time)."""
    conn = await asyncpg.connect(dsn(db_url))
    try:
        rows = await conn.fetch(_STORED_SQL, LIVE_PAIRS, since_ms, until_ms)
    finally:
        await conn.close()
    from_notify = [
        (r["made"] - closes.at[(r["symbol"], r["origin"])]) * 1000
        for r in rows
        if (r["symbol"], r["origin"]) in closes.at
    ]
    from_close = [float(r["made"]) * 1000 - clock.wall_at(r["origin"] + MINUTE_MS) for r in rows]

    def stats(values: list[float]) -> dict:
        values = [float(v) for v in values]
        return {
            "n": len(values),
            "p50": _r(percentile(values, 50)),
            "p99": _r(percentile(values, 99)),
            "max": _r(max(values, default=None)),
        }

    return {
        "commit_notify_to_stored_ms": stats(from_notify),
        "exchange_close_to_stored_ms": stats(from_close),
        "target_p99_ms": CLOSE_TO_STORED_P99_MS,
    }


def _r(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


@contextlib.contextmanager
def serve_environment(config: str) -> Iterator[None]:
    """Serve's options in the environment that Ray's processes inherit, then restored."""
    saved = {k: os.environ.get(k) for k in ENV["direct"]}
    os.environ.update(ENV[config])
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def run_config(server_url: URL | str, store_root: str, config_name: str, loader: str) -> dict:
    """One Serve configuration: idle phase, then two live pairs."""
    tuned = config_name != "default"
    result: dict = {
        "config": config_name,
        "env": ENV[config_name],
        "client": loader,
        "machine_before": machine(),
    }
    async with scratch_database(server_url, BENCH_DB) as url:
        db = Database(url, pool_size=4)
        url_text = url.render_as_string(hide_password=False)
        read_config = ReplayConfig(speed=1.0, pairs=[READ_PAIR], history_ms=READ_LOOKBACK_MS + DAY_MS)
        with replay_process(read_config) as replay:
            await backfill(db, replay.rest_url, replay.stream_url, READ_PAIR, READ_LOOKBACK_MS)
        store = ModelStore(store_root)
        await ensure_baseline(db, store, (await _statuses_ids(db))[READ_PAIR])
        live_config = ReplayConfig(speed=LIVE_SPEED, pairs=[LIVE_SOURCE], clones={LIVE_SOURCE: 1})
        with replay_process(live_config) as live, serve_environment(config_name):
            options = ServeOptions(
                store.root,
                live.rest_url,
                live.stream_url,
                port=PORT,
                database_url=url_text,
                access_log=not tuned,
            )
            start_ray(num_cpus=2)
            supervisor = None
            try:
                start_controller(options.host, options.port)
                config = await generate(db, options)
                config["applications"].extend(noop_applications(tuned))
                await apply_config(config)
                await wait_running([a["name"] for a in config["applications"]])
                async with httpx.AsyncClient(base_url=api_url(options), timeout=30) as client:
                    await until(lambda: _has_prediction(client), LIVE_READY_TIMEOUT_S, "a stored prediction")
                    targets = await read_targets(client)
                    bases = await target_bases(config_name, options, targets)
                    result["bases"] = bases
                    result["idle"] = await load_phase(targets, bases, loader)
                    result["idle_verdict"] = verdict(result["idle"])
                    closes = Closes()
                    listener = await asyncpg.connect(dsn(url))
                    await listener.add_listener(CANDLES_CHANNEL, closes.on_notify)
                    for symbol in LIVE_PAIRS:
                        await submit_command(db, "add_pair", symbol)
                    supervisor = start_supervisor(url_text, live.rest_url, live.stream_url, LIVE_LOOKBACK_MS)
                    await until(lambda: _live_and_predicted(db), LIVE_READY_TIMEOUT_S, "live pairs predicted")
                    since = (live.clock.now() // MINUTE_MS + 1) * MINUTE_MS
                    result["live"] = await load_phase(targets, bases, loader)
                    result["live_verdict"] = verdict(result["live"])
                    loaded_until = live.clock.now()
                    await asyncio.sleep(QUIET_SECONDS)  # more candles, with no API load at all
                    quiet_until = live.clock.now() - MINUTE_MS  # a slow last prediction is still counted
                    result["live_verdict"]["close_to_stored"] = await close_to_stored(
                        url, closes, live.clock, since, loaded_until
                    )
                    result["live_verdict"]["close_to_stored_unloaded"] = await close_to_stored(
                        url, closes, live.clock, loaded_until, quiet_until
                    )
                    result["live_predictor"] = await serve.get_deployment_handle(
                        LIVE_DEPLOYMENT, app_name="router"
                    ).stats.remote()
                    await listener.close()
            finally:
                await tear_down(supervisor)
        await db.dispose()
    result["machine_after"] = machine()
    return result


async def tear_down(supervisor: ActorHandle | None) -> None:
    """Pairs first (the supervisor stops its actors), then Serve, then Ray: nothing is left running."""
    if supervisor is not None:
        await asyncio.wait_for(supervisor.shutdown.remote(), SHUTDOWN_TIMEOUT_S)
    stop_serving()
    stop_ray()


async def _statuses_ids(db: Database) -> dict[str, int]:
    async with db.raw() as conn:
        return {r["symbol"]: r["id"] for r in await conn.fetch("SELECT id, symbol FROM symbols")}


async def _has_prediction(client: httpx.AsyncClient) -> bool:
    return (await client.get(f"/pairs/{READ_PAIR}/predictions/latest")).status_code == 200


async def _live_and_predicted(db: Database) -> bool:
    states = await statuses(db)
    if not all(states.get(s) == "live" for s in LIVE_PAIRS):
        return False
    async with db.raw() as conn:
        n = await conn.fetchval(
            "SELECT count(DISTINCT s.symbol) FROM predictions p JOIN symbols s ON s.id = p.symbol_id "
            "WHERE s.symbol = ANY($1) AND NOT p.late",
            LIVE_PAIRS,
        )
    return n == len(LIVE_PAIRS)


async def run_serve_bench(
    server_url: URL | str, store_root: str, configs: tuple[str, ...] = CONFIGS, loader: str | None = None
) -> dict:
    """Every configuration in turn; the load from ``loader`` (default: wrk when installed)."""
    loader = loader or ("wrk" if WRK else "httpx")
    runs = {name: await run_config(server_url, store_root, name, loader) for name in configs}
    return {"benchmark": "serve", "runs": runs}
