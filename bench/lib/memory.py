"""The memory benchmark (``bench/serve.py --memory``): 20 live pairs served, one Tune trial running.

It checks the whole system against the 16 GB memory target (``LIMIT_GIB``) with 20 pairs live
and a training trial at its peak, and shows which role holds the memory. The whole
system's resident memory is summed over Ray's process tree (raylet, GCS, Serve controller and
proxy, every replica, the ingest actors, the Tune trial), this driver, and the PostgreSQL server's
processes; sampled while the trial trains, the peak is reported, with RSS per role.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import psutil
from sqlalchemy.engine import URL

from bench.lib.harness import dsn, machine, replay_process, scratch_database, until
from bench.lib.serving import tear_down
from cryptocast.actors.ray_runtime import ray_processes, start_ray
from cryptocast.actors.supervisor import start_supervisor
from cryptocast.exchange.recordings import BUNDLED_DIR
from cryptocast.exchange.server import ReplayConfig
from cryptocast.records import MINUTE_MS
from cryptocast.serve.config import PAIR_CPUS, ServeOptions
from cryptocast.serve.deploy import deploy, wait_running
from cryptocast.sql.database import Database
from cryptocast.sql.queries import submit_command
from cryptocast.tune.candles import from_file
from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.sweep import run_sweep

MEMORY_DB = "cryptocast_bench_serve_memory"
SOURCE = "BTCUSDT"
CLONES = 19  # BTCUSDT_C01..C19: 20 pairs
SPEED = 60.0
LOOKBACK_MS = 300 * MINUTE_MS  # a persistence baseline, so every pair gets its application
READY_TIMEOUT_S = 600.0
SAMPLE_S = 1.0
TRIAL_DAYS = 14  # of the recording the trial trains on
TRIAL_SPANS = SplitSpans(val_ms=2 * DAY_MS, calib_ms=2 * DAY_MS, test_ms=2 * DAY_MS)
TRIAL_EPOCHS = 2
LIMIT_GIB = 16.0
MIB = 2**20
ROLES = (  # (role, marker in the command line), first match wins
    ("pair_replica", "ServeReplica:pair_"),
    ("router_replica", "ServeReplica:router:Router"),
    ("live_predictor_replica", "ServeReplica:router:LivePredictor"),
    ("serve_controller", "ServeController"),
    ("serve_proxy", "ProxyActor"),
    ("tune_trial", "ImplicitFunc"),
    ("tune_driver", "TuneController"),
    ("ingest_pair_actor", "ray::PairActor"),
    ("supervisor", "ray::Supervisor"),
    ("raylet", "raylet"),
    ("gcs_server", "gcs_server"),
)


def _role(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    for role, marker in ROLES:
        if marker in command:
            return role
    return "other_ray"


def postgres_processes(server_pid: int) -> list[psutil.Process]:
    root = psutil.Process(server_pid)
    return [root, *root.children(recursive=True)]


def snapshot(pg_pid: int) -> dict[str, list[float]]:
    """RSS (MiB) of every process, by role; the driver is this process."""
    out: dict[str, list[float]] = {}
    me = psutil.Process().pid
    for p in ray_processes() + postgres_processes(pg_pid):
        try:
            role = "driver" if p.pid == me else "postgresql" if p.name().startswith("postgres") else _role(p)
            out.setdefault(role, []).append(p.memory_info().rss / MIB)
        except psutil.NoSuchProcess:
            continue
    return out


def summarise(roles: dict[str, list[float]]) -> dict:
    total = sum(sum(v) for v in roles.values())
    return {
        "total_rss_gib": round(total / 1024, 3),
        "by_role": {
            r: {
                "processes": len(v),
                "rss_mib_sum": round(sum(v), 1),
                "rss_mib_each_max": round(max(v), 1),
                "rss_mib_each_mean": round(sum(v) / len(v), 1),
            }
            for r, v in sorted(roles.items())
        },
    }


async def _postmaster(db_url: URL) -> int:
    conn = await asyncpg.connect(dsn(db_url))
    try:  # the backend serving this connection is a child of the server's main process
        return psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).ppid()
    finally:
        await conn.close()


async def _all_served(db: Database, symbols: list[str]) -> bool:
    """Every pair has a champion (so its application). Not "all live at once": on overloaded cores the
    supervisor restarts actors that answer slowly, so some pair is nearly always between states."""
    async with db.raw() as conn:
        n = await conn.fetchval("SELECT count(DISTINCT symbol_id) FROM models WHERE status = 'champion'")
    return n == len(symbols)


def _trial(storage: Path, done: threading.Event, errors: list[str]) -> None:
    candles = from_file(BUNDLED_DIR / f"{SOURCE}-2025-03.parquet")
    candles = candles.since(int(candles.open_time[-1]) - TRIAL_DAYS * DAY_MS)
    try:
        run_sweep(candles, TRIAL_SPANS, trials=1, epochs=TRIAL_EPOCHS, seed=0, storage=storage)
    except Exception as exc:  # reported in the JSON; memory was still sampled while it ran
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        done.set()


async def run_memory_bench(server_url: URL | str, store_root: str) -> dict:
    symbols = [SOURCE] + [f"{SOURCE}_C{i:02d}" for i in range(1, CLONES + 1)]
    result: dict = {
        "benchmark": "serve_memory",
        "pairs": len(symbols),
        "pair_replica_num_cpus": PAIR_CPUS,
        "machine_before": machine(),
    }
    async with scratch_database(server_url, MEMORY_DB) as url:
        db = Database(url, pool_size=4)
        url_text = url.render_as_string(hide_password=False)
        pg_pid = await _postmaster(url)
        with replay_process(ReplayConfig(speed=SPEED, pairs=[SOURCE], clones={SOURCE: CLONES})) as replay:
            for symbol in symbols:
                await submit_command(db, "add_pair", symbol)
            start_ray(num_cpus=2)
            supervisor = None
            try:
                options = ServeOptions(
                    store_root, replay.rest_url, replay.stream_url, port=8766, database_url=url_text
                )
                await deploy(db, options)
                supervisor = start_supervisor(url_text, replay.rest_url, replay.stream_url, LOOKBACK_MS)
                started = time.monotonic()
                await until(lambda: _all_served(db, symbols), READY_TIMEOUT_S, "20 pairs with a champion")
                apps = ["router"] + [f"pair_{s}" for s in symbols]
                await wait_running(apps, READY_TIMEOUT_S)
                result["seconds_to_20_served"] = round(time.monotonic() - started, 1)
                result["idle"] = summarise(snapshot(pg_pid))
                peak, done, errors = None, threading.Event(), []
                with tempfile.TemporaryDirectory(prefix="cryptocast-bench-tune-") as storage:
                    trial = asyncio.create_task(asyncio.to_thread(_trial, Path(storage), done, errors))
                    while not done.is_set():
                        sample = snapshot(pg_pid)
                        if "tune_trial" in sample and (peak is None or _total(sample) > _total(peak)):
                            peak = sample
                        await asyncio.sleep(SAMPLE_S)
                    await trial
                result["with_trial_peak"] = summarise(peak) if peak else None
                result["trial_errors"] = errors
                result["limit_gib"] = LIMIT_GIB
            finally:
                await tear_down(supervisor)
        await db.dispose()
    result["machine_after"] = machine()
    return result


def _total(roles: dict[str, list[float]]) -> float:
    return sum(sum(v) for v in roles.values())
