"""Ingestion benchmarks: backfill throughput (free and throttled) and live latency, as JSON.

They measure whether ingestion meets its targets (``BACKFILL_TARGET`` candles/s with the rate
limit off, ``THROTTLED_TARGET`` of what Binance's weight limit allows, a live p99 of
``LATENCY_TARGET_MS`` from the exchange's close to the committed row) and what it costs in CPU and
memory per pair, the figures docs/scaling.md sizes the cluster from.

The replay exchange runs in its own process, as a remote exchange would, so its CPU time does not
count against the ingest side's event loop. Everything is written into a scratch database created
for the run and dropped after it, so the benchmarks never touch real data.

* :func:`run_backfill_bench` (``bench/backfill.py``) pages every bundled recording (all history
  backfillable: the replay's "now" lies after each recording's end) through python-binance into
  PostgreSQL with :class:`PairIngestor`, once with no rate limit and once with the replay's weight
  limit at 600/min and the shared :class:`RateBudget` at the same limit.
* :func:`run_live_bench` (``bench/live.py``) runs pairs on Ray through the supervisor and times each
  closed candle from the exchange's close event to the ``cryptocast_candles`` NOTIFY of its commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from dataclasses import dataclass

import asyncpg
import psutil
from ray.exceptions import RayError
from sqlalchemy.engine import URL

from bench.lib.harness import (
    SHUTDOWN_TIMEOUT_S,
    Replay,
    cpu_seconds,
    database_server,
    dsn,
    machine,
    replay_process,
    scratch_database,
    server_cpu,
    statuses,
    until,
)
from cryptocast.actors.budget import SAFETY, LocalBudget, RateBudget
from cryptocast.actors.ingestor import KLINES_WEIGHT, PAGE, IngestConfig, PairIngestor
from cryptocast.actors.pair import PAIRS_PER_ACTOR
from cryptocast.actors.ray_runtime import ray_processes, start_ray, stop_ray
from cryptocast.actors.supervisor import start_supervisor
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.clock import DAY_MS
from cryptocast.exchange.recordings import split_symbol
from cryptocast.exchange.server import ReplayConfig
from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol, candle_count, submit_command, symbol_id
from cryptocast.sql.schema import CANDLES_CHANNEL

log = logging.getLogger(__name__)

# "now" this long after each recording's first bar (the longest is 31.5 days): every bar is history.
ALL_HISTORY_MS = 32 * DAY_MS
BACKFILL_SPEED = 1.0  # the exchange clock barely moves while history is paged
NO_WEIGHT_LIMIT = 10**12
THROTTLED_WEIGHT_LIMIT = 600
BACKFILL_TARGET = 35_000  # candles/s, rate limit off
THROTTLED_TARGET = 0.9  # of the bound the weight limit allows
POLL_S = 0.02  # how often the benchmark looks at the ingestors' state
MINUTE_S = 60.0
THROTTLED_PAIR = "BTCUSDT"
FREE_DB = "cryptocast_bench_backfill"
LIVE_DB = "cryptocast_bench_live"
LIVE_PAIR = "BTCUSDT"
LIVE_LOOKBACK_MS = 10 * MINUTE_MS  # a short backfill before the pairs go live
LATENCY_TARGET_MS = 50.0
LIVE_START_TIMEOUT_S = 180.0  # Ray, the supervisor and every pair's backfill
LIVE_TIMEOUT_FACTOR = 2.0  # of the wall time the wanted candles take to close
MIB = 2**20
SLOWEST_SHOWN = 12
# Ray process titles / command lines of the ingest side's parts (first match wins).
PROCESS_ROLES = (
    ("pair_actor", "ray::PairActor"),
    ("stream_actor", "ray::StreamActor"),
    ("supervisor", "ray::Supervisor"),
    ("budget_actor", "ray::BudgetActor"),
    ("raylet", "raylet"),
    ("gcs_server", "gcs_server"),
)
THROTTLED_DB = "cryptocast_bench_throttled"


def throttled_bound(weight_limit: int) -> float:
    """Candles/s the weight limit allows when every request is a full klines page."""
    return weight_limit / KLINES_WEIGHT * PAGE / MINUTE_S


# --- backfill ----------------------------------------------------------------------------------------
@dataclass
class PairRun:
    ingestor: PairIngestor
    backfilling_at: float | None = None
    live_at: float | None = None


async def _watch(runs: list[PairRun], samples: list[tuple[float, int]]) -> None:
    """Note when each pair starts and ends its backfill; sample the candles written over time."""
    while any(r.live_at is None for r in runs):
        now = time.time()
        for r in runs:
            if r.ingestor.state == "backfilling" and r.backfilling_at is None:
                r.backfilling_at = now
            if r.ingestor.state == "live":
                r.backfilling_at = r.backfilling_at or now
                r.live_at = now
        samples.append((now, sum(r.ingestor.counters.written for r in runs)))
        await asyncio.sleep(POLL_S)


def full_minute_rate(samples: list[tuple[float, int]], start: float, end: float) -> tuple[float | None, int]:
    """Candles/s over the whole wall-clock minutes inside ``[start, end]`` (the windows the exchange
    and the budget count weight in), and how many such minutes there were."""
    first, last = math.ceil(start / MINUTE_S), math.floor(end / MINUTE_S)
    if last <= first:
        return None, 0

    def written_at(t: float) -> int:
        return max((n for when, n in samples if when <= t), default=0)

    candles = written_at(last * MINUTE_S) - written_at(first * MINUTE_S)
    return candles / ((last - first) * MINUTE_S), last - first


async def backfill_once(db_url: URL, replay: Replay, weight_limit: int) -> dict:
    """Backfill every pair of ``replay`` from its first candle, all at once, sharing one budget."""
    db = Database(db_url, pool_size=len(replay.bars))
    for symbol in replay.bars:
        await add_symbol(db, symbol, *split_symbol(symbol))
    budget = RateBudget(weight_limit=weight_limit)
    shared = LocalBudget(budget)
    exchanges = [BinanceExchange(rest_url=replay.rest_url, stream_url=replay.stream_url) for _ in replay.bars]
    runs = [
        PairRun(PairIngestor(symbol, db, exchange, shared, IngestConfig(lookback_ms=None)))
        for symbol, exchange in zip(replay.bars, exchanges, strict=True)
    ]
    me, exchange_side = psutil.Process(), psutil.Process(replay.pid)
    postmaster = await database_server(db_url)
    cpu0 = (cpu_seconds(me), cpu_seconds(exchange_side))
    db_cpu0 = server_cpu(postmaster)
    stop = asyncio.Event()
    samples: list[tuple[float, int]] = []
    started = time.time()
    tasks = [asyncio.create_task(r.ingestor.run(stop)) for r in runs]
    try:
        await _watch(runs, samples)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for exchange in exchanges:
            await exchange.close_connection()
    cpu1 = (cpu_seconds(me), cpu_seconds(exchange_side))
    db_cpu1 = server_cpu(postmaster)  # before the pool closes: its backends' CPU goes with them
    stored = {r.ingestor.symbol: await _stored(db, r.ingestor.symbol) for r in runs}
    await db.dispose()
    first = min(r.backfilling_at for r in runs)  # type: ignore[type-var]
    last = max(r.live_at for r in runs)  # type: ignore[type-var]
    total = sum(stored.values())
    steady, minutes = full_minute_rate(samples, first, last)
    return {
        "pairs": len(runs),
        "candles_stored": total,
        "candles_expected": sum(replay.bars.values()),
        "seconds": round(last - first, 3),
        "seconds_with_startup": round(last - started, 3),
        "candles_per_s": round(total / (last - first)),
        "full_minutes": minutes,
        "candles_per_s_full_minutes": round(steady) if steady is not None else None,
        "rest_calls": sum(r.ingestor.counters.rest_calls for r in runs),
        "http_429_or_418": budget.penalties,
        "cpu_s_ingest": round(cpu1[0] - cpu0[0], 2),
        "cpu_s_exchange": round(cpu1[1] - cpu0[1], 2),
        # None when the server is not on this machine (or its processes may not be inspected).
        "cpu_s_database": round(sum(t - db_cpu0.get(pid, 0.0) for pid, t in db_cpu1.items()), 2)
        if postmaster is not None
        else None,
        "ingest_cpu_us_per_candle": round((cpu1[0] - cpu0[0]) / max(total, 1) * 1e6, 1),
        "per_pair": {
            r.ingestor.symbol: {
                "candles": stored[r.ingestor.symbol],
                "expected": replay.bars[r.ingestor.symbol],
                "seconds": round(r.live_at - r.backfilling_at, 3),  # type: ignore[operator]
                "candles_per_s": round(stored[r.ingestor.symbol] / (r.live_at - r.backfilling_at)),  # type: ignore[operator]
                "rest_calls": r.ingestor.counters.rest_calls,
            }
            for r in runs
        },
    }


async def _statement_starts(db: Database, first_open_ms: int) -> dict[tuple[str, int], float]:
    """When each live candle's transaction began (its ``ingested_at``), wall ms by (pair, minute)."""
    async with db.raw() as conn:
        rows = await conn.fetch(
            "SELECT s.symbol, (extract(epoch FROM p.open_time) * 1000)::bigint AS open_ms,"
            " extract(epoch FROM p.ingested_at) * 1000 AS began_ms"
            " FROM price_history p JOIN symbols s ON s.id = p.symbol_id WHERE p.open_time >= to_timestamp($1)",
            first_open_ms / 1000,
        )
    return {(r["symbol"], r["open_ms"]): float(r["began_ms"]) for r in rows}


def _quantiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2)}


async def _stored(db: Database, symbol: str) -> int:
    sid = await symbol_id(db, symbol)
    return await candle_count(db, sid) if sid is not None else 0


async def run_backfill_bench(
    server_url: URL | str, pairs: list[str] | None, throttled_clones: int, skip_throttled: bool = False
) -> dict:
    """Free backfill of ``pairs`` (None: every recording), then the throttled run on BTCUSDT and
    ``throttled_clones`` clones of it (enough pages to span several weight-limit minutes)."""
    result: dict = {"benchmark": "backfill", "machine_before": machine(), "page": PAGE}
    async with scratch_database(server_url, FREE_DB) as url:
        config = ReplayConfig(
            speed=BACKFILL_SPEED, pairs=pairs, history_ms=ALL_HISTORY_MS, weight_limit=NO_WEIGHT_LIMIT
        )
        with replay_process(config) as replay:
            free = await backfill_once(url, replay, NO_WEIGHT_LIMIT)
        free["target_candles_per_s"] = BACKFILL_TARGET
        result["free"] = free
    result["machine_after_free"] = machine()
    if not skip_throttled:
        async with scratch_database(server_url, THROTTLED_DB) as url:
            config = ReplayConfig(
                speed=BACKFILL_SPEED,
                pairs=[THROTTLED_PAIR],
                history_ms=ALL_HISTORY_MS,
                clones={THROTTLED_PAIR: throttled_clones} if throttled_clones else {},
                weight_limit=THROTTLED_WEIGHT_LIMIT,
            )
            with replay_process(config) as replay:
                throttled = await backfill_once(url, replay, THROTTLED_WEIGHT_LIMIT)
        bound = throttled_bound(THROTTLED_WEIGHT_LIMIT)
        throttled["weight_limit_per_min"] = THROTTLED_WEIGHT_LIMIT
        throttled["bound_candles_per_s"] = round(bound)
        throttled["ratio_to_bound"] = round(throttled["candles_per_s"] / bound, 3)
        steady = throttled["candles_per_s_full_minutes"]
        throttled["ratio_to_bound_full_minutes"] = round(steady / bound, 3) if steady is not None else None
        throttled["budget_safety"] = SAFETY
        throttled["target_ratio"] = THROTTLED_TARGET
        result["throttled"] = throttled
        result["machine_after_throttled"] = machine()
    return result


# --- live latency on Ray -----------------------------------------------------------------------------
@dataclass
class Arrivals:
    """Every ``cryptocast_candles`` NOTIFY: (wall time received, payload)."""

    seen: list[tuple[float, dict]]

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.seen.append((time.time(), json.loads(payload)))

    def live_since(self, first_open_ms: int) -> list[tuple[float, dict]]:
        """One-candle commits (the live path) of minutes opened at or after ``first_open_ms``."""
        return [(t, p) for t, p in self.seen if p["open_time"] >= first_open_ms and p["count"] == 1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def _role(process: psutil.Process) -> str:
    """Which part of the ingest side a Ray process is, from its name and title."""
    command = " ".join(process.cmdline())
    for role, marker in PROCESS_ROLES:
        if marker in command:
            return role
    return "other_ray"


def ingest_processes() -> dict[str, list[psutil.Process]]:
    """The local Ray head's processes by role; the driver (this benchmark) is left out."""
    roles: dict[str, list[psutil.Process]] = {}
    for process in ray_processes():
        if process.pid == os.getpid():
            continue
        try:
            roles.setdefault(_role(process), []).append(process)
        except psutil.NoSuchProcess:
            continue
    return roles


def memory_report(roles: dict[str, list[psutil.Process]]) -> dict:
    """RSS (resident, shared pages counted in each) and USS (memory only this process holds), MiB."""
    report: dict[str, dict] = {}
    total_rss = total_uss = 0.0
    for role, processes in sorted(roles.items()):
        infos = []
        for p in processes:
            try:
                infos.append(p.memory_full_info())
            except psutil.NoSuchProcess:
                continue
        rss = [i.rss / MIB for i in infos]
        uss = [i.uss / MIB for i in infos]
        pss = [i.pss / MIB for i in infos]
        total_rss, total_uss = total_rss + sum(rss), total_uss + sum(uss)
        report[role] = {
            "processes": len(infos),
            "rss_mib_each_mean": round(sum(rss) / max(len(rss), 1), 1),
            "rss_mib_each_max": round(max(rss, default=0.0), 1),
            "uss_mib_each_mean": round(sum(uss) / max(len(uss), 1), 1),
            "rss_mib_sum": round(sum(rss), 1),
            "uss_mib_sum": round(sum(uss), 1),
            "pss_mib_sum": round(sum(pss), 1),
        }
    report["ingest_side_total"] = {"rss_mib": round(total_rss, 1), "uss_mib": round(total_uss, 1)}
    return report


def _cpu_by_role(roles: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out = {}
    for role, processes in roles.items():
        total = 0.0
        for p in processes:
            try:
                total += cpu_seconds(p)
            except psutil.NoSuchProcess:
                continue
        out[role] = total
    return out


async def live_once(
    db_url: URL, replay: Replay, min_candles: int, timeout_s: float, pairs_per_actor: int = PAIRS_PER_ACTOR
) -> dict:
    """Pairs of ``replay`` on Ray via the supervisor; latency of each live candle to its commit."""
    db = Database(db_url, pool_size=2)
    pairs = list(replay.bars)
    for symbol in pairs:
        await submit_command(db, "add_pair", symbol)
    arrivals = Arrivals([])
    listener = await asyncpg.connect(dsn(db_url))
    await listener.add_listener(CANDLES_CHANNEL, arrivals.on_notify)
    start_ray()
    url = db_url.render_as_string(hide_password=False)
    supervisor = start_supervisor(
        url, replay.rest_url, replay.stream_url, lookback_ms=LIVE_LOOKBACK_MS, pairs_per_actor=pairs_per_actor
    )
    try:

        async def all_live() -> bool:
            states = await statuses(db)
            return all(states.get(s) == "live" for s in pairs)

        await until(all_live, LIVE_START_TIMEOUT_S, "every pair live")
        first_open = (replay.clock.now() // MINUTE_MS + 1) * MINUTE_MS  # closes after all are live
        roles = ingest_processes()
        cpu0, t0 = _cpu_by_role(roles), time.time()

        async def enough() -> bool:
            return len(arrivals.live_since(first_open)) >= min_candles

        await until(enough, timeout_s, f"{min_candles} live candles")
        cpu1, t1 = _cpu_by_role(roles), time.time()
        memory = memory_report(ingest_processes())
        snapshot = await supervisor.snapshot.remote()
    finally:
        try:
            await asyncio.wait_for(supervisor.shutdown.remote(), SHUTDOWN_TIMEOUT_S)
        except (RayError, TimeoutError) as exc:  # the numbers are taken; Ray's shutdown ends the actors
            log.warning("supervisor shutdown failed: %s", exc)
        stop_ray()
        await listener.close()
    live = arrivals.live_since(first_open)
    latencies_ms = [t * 1000 - replay.clock.wall_at(p["open_time"] + MINUTE_MS) for t, p in live]
    # Where the time went: close → the commit's transaction began (stream, actors, queueing for the
    # pool), then began → NOTIFY heard (the statement, its commit and the notice's delivery).
    began = await _statement_starts(db, first_open)
    to_statement = [
        began[p["symbol"], p["open_time"]] - replay.clock.wall_at(p["open_time"] + MINUTE_MS) for _, p in live
    ]
    to_notice = [t * 1000 - began[p["symbol"], p["open_time"]] for t, p in live]
    # The slowest candles with the minute they closed (minutes since the first timed one): a slow
    # minute for every pair points at the host, one pair's slow minutes at that pair.
    slowest = sorted(zip(latencies_ms, live, strict=True), key=lambda x: -x[0])[:SLOWEST_SHOWN]
    per_pair = {s: sum(1 for _, p in live if p["symbol"] == s) for s in pairs}
    stored = {s: await _stored(db, s) for s in pairs}
    await db.dispose()
    window = t1 - t0
    hosts = memory.get("pair_actor", {})
    return {
        "pairs": len(pairs),
        "pairs_per_actor": pairs_per_actor,
        "speed": replay.clock.speed,
        "candles": len(latencies_ms),
        "candles_per_pair": {"min": min(per_pair.values()), "max": max(per_pair.values())},
        "latency_ms": {
            "p50": round(percentile(latencies_ms, 50), 2),
            "p90": round(percentile(latencies_ms, 90), 2),
            "p99": round(percentile(latencies_ms, 99), 2),
            "max": round(max(latencies_ms), 2),
            "min": round(min(latencies_ms), 2),
        },
        "target_p99_ms": LATENCY_TARGET_MS,
        "split_ms": {
            "close_to_statement": _quantiles(to_statement),
            "statement_to_notice": _quantiles(to_notice),
        },
        "slowest": [
            {
                "ms": round(ms, 1),
                "to_statement_ms": round(
                    began[p["symbol"], p["open_time"]] - replay.clock.wall_at(p["open_time"] + MINUTE_MS), 1
                ),
                "pair": p["symbol"],
                "minute": (p["open_time"] - first_open) // MINUTE_MS,
            }
            for ms, (_, p) in slowest
        ],
        "stored_candles": sum(stored.values()),
        "restarts": snapshot["restarts_total"],
        "window_s": round(window, 1),
        "cpu_cores_by_role": {r: round((cpu1.get(r, 0.0) - c) / window, 4) for r, c in cpu0.items()},
        "cpu_cores_per_pair_actor": round(
            (cpu1.get("pair_actor", 0.0) - cpu0.get("pair_actor", 0.0)) / window / len(pairs), 4
        ),
        "memory": memory,
        "pair_actor_uss_mib_per_pair": round(hosts.get("uss_mib_sum", 0.0) / len(pairs), 1),
        "pair_actor_pss_mib_per_pair": round(hosts.get("pss_mib_sum", 0.0) / len(pairs), 1),
    }


async def run_live_bench(
    server_url: URL | str, pairs: int, speed: float, min_candles: int, pairs_per_actor: int = PAIRS_PER_ACTOR
) -> dict:
    """``pairs`` live pairs (BTCUSDT and clones of it) at ``speed``× until ``min_candles`` live candles."""
    minutes = math.ceil(min_candles / pairs)
    timeout_s = minutes * MINUTE_S / speed * LIVE_TIMEOUT_FACTOR + LIVE_START_TIMEOUT_S
    result: dict = {"benchmark": "live", "machine_before": machine()}
    async with scratch_database(server_url, LIVE_DB) as url:
        config = ReplayConfig(
            speed=speed, pairs=[LIVE_PAIR], clones={LIVE_PAIR: pairs - 1} if pairs > 1 else {}
        )
        with replay_process(config) as replay:
            result.update(await live_once(url, replay, min_candles, timeout_s, pairs_per_actor))
    result["machine_after"] = machine()
    return result
