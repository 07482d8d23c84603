"""Ingestion across Ray nodes: replay clones of a pair spread over a local multi-node cluster, as JSON.

The cluster is ``LocalCluster`` (``cluster.py``): a head that runs the driver and the supervisor,
and worker nodes that offer the ``cryptocast_ingest`` resource, so every pair lands on a worker;
all on loopback. The replay runs in its own process at ``speed``×. The run measures, per node and
per pair, what docs/scaling.md sizes a 1,600-pair cluster from:

* close → committed: wall time from each candle's close on the exchange's clock to the NOTIFY of
  its row's commit, for every live candle (the ingest lag of that candle), per pair and pooled;
* RSS/USS/PSS of each node's processes, and USS of the pair actors per pair they host;
* websocket connections: open per node now, and opened in all (from the stream actors);
* REST weight spent per wall minute, per node (from the node budgets);
* after a worker node is killed: how long until its pairs are live on the other nodes and caught
  up, and the missing and duplicate minutes of every pair after recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections import defaultdict

import asyncpg
import psutil
import ray
from ray.exceptions import RayError
from sqlalchemy.engine import URL

from bench.lib.cluster import HealthCheck, LocalCluster, NodeSpec
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
from bench.lib.ingest import Arrivals, percentile
from cryptocast.actors.check import completeness
from cryptocast.actors.nodes import (
    BUDGET_PREFIX,
    HOST_PREFIX,
    INGEST_RESOURCE,
    NAMESPACE,
    STREAM_PREFIX,
    named_actors,
)
from cryptocast.actors.pair import PAIRS_PER_ACTOR
from cryptocast.actors.streamhub import PAIRS_PER_CONNECTION
from cryptocast.actors.supervisor import start_supervisor
from cryptocast.exchange.server import ReplayConfig
from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.queries import submit_command
from cryptocast.sql.schema import CANDLES_CHANNEL

log = logging.getLogger(__name__)

SCALE_DB = "cryptocast_bench_scale"
PAIR = "BTCUSDT"
LOOKBACK_MS = 10 * MINUTE_MS  # a short backfill before the pairs go live
# The GCS declares a killed node dead after about 3 × 500 ms (Ray's default: 15 s).
FAST_HEALTH_CHECK = HealthCheck(period_ms=500, failure_threshold=3, timeout_ms=500)
START_TIMEOUT_S = 300.0  # every pair live, after the cluster is up
RECOVERY_TIMEOUT_S = 300.0
MIB = 2**20
LAG_TARGET_S = 2.0
LATENCY_TARGET_MS = 50.0


def _node_of(name: str) -> str:
    """The node id in a per-node actor's name (``pairs:<node>:<n>``, ``stream:<node>:<n>``, ``budget:<node>``)."""
    return name.split(":")[1]


async def _per_node_actors(names: dict[str, str]) -> dict:
    """Budgets, stream actors and hosts by node name, with what each reports."""
    by_id = {node_id: name for name, node_id in names.items()}
    nodes: dict[str, dict] = defaultdict(lambda: {"budget": None, "streams": [], "hosts": []})
    for name in named_actors(BUDGET_PREFIX):
        with _quiet():
            nodes[by_id.get(_node_of(name), "?")]["budget"] = await ray.get_actor(
                name, namespace=NAMESPACE
            ).snapshot.remote()
    for name in named_actors(STREAM_PREFIX):
        with _quiet():
            nodes[by_id.get(_node_of(name), "?")]["streams"].append(
                await asyncio.wait_for(ray.get_actor(name, namespace=NAMESPACE).status.remote(), 10)
            )
    for name in named_actors(HOST_PREFIX):
        with _quiet():
            pairs = await asyncio.wait_for(ray.get_actor(name, namespace=NAMESPACE).status.remote(), 10)
            nodes[by_id.get(_node_of(name), "?")]["hosts"].append(pairs)
    return dict(nodes)


class _quiet:
    """Skip an actor that died between being listed and being asked (a killed node's)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, RayError | TimeoutError | ValueError)


def _pair_actor_memory(cluster: LocalCluster) -> dict[str, dict]:
    """Per node: the pair actors' processes and their memory (MiB)."""
    out = {}
    for node, processes in cluster.processes_by_node().items():
        infos = []
        for p in processes:
            try:
                if "ray::PairActor" in " ".join(p.cmdline()):
                    infos.append(p.memory_full_info())
            except Exception:  # a process that ended meanwhile
                continue
        out[node] = {
            "processes": len(infos),
            "rss_mib": round(sum(i.rss for i in infos) / MIB, 1),
            "uss_mib": round(sum(i.uss for i in infos) / MIB, 1),
            "pss_mib": round(sum(i.pss for i in infos) / MIB, 1),
        }
    return out


def _cpu(cluster: LocalCluster, replay: Replay, postmaster: psutil.Process | None) -> dict[str, float]:
    """CPU seconds so far of each node's processes, the replay and the database server."""
    out = {}
    for node, processes in cluster.processes_by_node().items():
        total = 0.0
        for p in processes:
            with contextlib.suppress(psutil.Error):
                total += cpu_seconds(p)
        out[f"node_{node}"] = total
    with contextlib.suppress(psutil.Error):
        out["replay"] = cpu_seconds(psutil.Process(replay.pid))
    out["database"] = sum(server_cpu(postmaster).values())
    return out


def _latency_report(latencies: dict[str, list[float]]) -> dict:
    pooled = [x for values in latencies.values() for x in values]
    p99_each = {s: percentile(v, 99) for s, v in latencies.items() if v}
    return {
        "candles": len(pooled),
        "pooled_ms": {
            "p50": round(percentile(pooled, 50), 1),
            "p99": round(percentile(pooled, 99), 1),
            "max": round(max(pooled), 1),
        }
        if pooled
        else None,
        "per_pair_p50_ms_median": round(
            statistics.median(percentile(v, 50) for v in latencies.values() if v), 1
        )
        if pooled
        else None,
        "per_pair_p99_ms_max": round(max(p99_each.values()), 1) if p99_each else None,
    }


def _latencies(arrivals: Arrivals, replay: Replay, since_ms: int, until_ms: int) -> dict[str, list[float]]:
    """Close → committed in ms of each live candle that opened in ``[since_ms, until_ms)``, per pair."""
    out: dict[str, list[float]] = defaultdict(list)
    for t, p in arrivals.live_since(since_ms):
        if p["open_time"] < until_ms:
            out[p["symbol"]].append(t * 1000 - replay.clock.wall_at(p["open_time"] + MINUTE_MS))
    return out


async def cluster_once(
    db_url: URL,
    replay: Replay,
    nodes: int,
    measure_s: float,
    kill: bool,
    pairs_per_actor: int,
) -> dict:
    """The replay's pairs on ``nodes`` worker nodes; measure for ``measure_s``; then kill a node."""
    db = Database(db_url, pool_size=2)
    pairs = list(replay.bars)
    for symbol in pairs:
        await submit_command(db, "add_pair", symbol)
    arrivals = Arrivals([])
    listener = await asyncpg.connect(dsn(db_url))
    await listener.add_listener(CANDLES_CHANNEL, arrivals.on_notify)
    workers = [NodeSpec(f"w{i + 1}", 1, resources={INGEST_RESOURCE: 1}) for i in range(nodes)]
    result: dict = {
        "pairs": len(pairs),
        "nodes": nodes,
        "speed": replay.clock.speed,
        "pairs_per_actor": pairs_per_actor,
    }
    started = time.monotonic()
    with LocalCluster(workers, head_cpus=1, health_check=FAST_HEALTH_CHECK) as cluster, cluster.driver():
        result["cluster_start_s"] = round(time.monotonic() - started, 1)
        names = cluster.node_ids()
        url = db_url.render_as_string(hide_password=False)
        supervisor = start_supervisor(
            url, replay.rest_url, replay.stream_url, lookback_ms=LOOKBACK_MS, pairs_per_actor=pairs_per_actor
        )
        try:
            t0 = time.monotonic()

            async def all_live() -> bool:
                states = await statuses(db)
                return all(states.get(s) == "live" for s in pairs)

            await until(all_live, START_TIMEOUT_S, "every pair live")
            result["all_live_after_s"] = round(time.monotonic() - t0, 1)
            first_open = (replay.clock.now() // MINUTE_MS + 1) * MINUTE_MS
            before = await _per_node_actors(names)
            postmaster = await database_server(db_url)
            cpu0, t0 = _cpu(cluster, replay, postmaster), time.monotonic()
            await asyncio.sleep(measure_s)
            cpu1, window = _cpu(cluster, replay, postmaster), time.monotonic() - t0
            end_open = replay.clock.now() // MINUTE_MS * MINUTE_MS
            after = await _per_node_actors(names)
            result["cpu_cores"] = {k: round((cpu1[k] - cpu0.get(k, 0.0)) / window, 3) for k in cpu1}
            result["steady"] = _latency_report(_latencies(arrivals, replay, first_open, end_open))
            result["steady"]["window_s"] = measure_s
            result["memory_by_node"] = cluster.memory_by_node()
            result["pair_actors_by_node"] = _pair_actor_memory(cluster)
            result["per_node"] = _node_report(before, after, measure_s)
            if kill:
                result["kill"] = await _kill_one(cluster, supervisor, db, replay, pairs, names)
        finally:
            try:
                await asyncio.wait_for(supervisor.shutdown.remote(), SHUTDOWN_TIMEOUT_S)
            except (
                RayError,
                TimeoutError,
            ) as exc:  # the numbers are taken; stopping the cluster ends the rest
                log.warning("supervisor shutdown failed: %s", exc)
            await listener.close()
    report = {c.symbol: c for c in await completeness(db)}
    await db.dispose()
    result["missing_minutes"] = sum(report[s].missing for s in pairs)
    result["duplicate_minutes"] = sum(report[s].duplicates for s in pairs)
    result["pairs_with_missing"] = sorted(s for s in pairs if report[s].missing)
    uss = sum(n["uss_mib"] for n in result["pair_actors_by_node"].values())
    hosts = sum(n["processes"] for n in result["pair_actors_by_node"].values())
    result["pair_actor_uss_mib_per_pair"] = round(uss / len(pairs), 2)
    result["pair_actor_uss_mib_per_process"] = round(uss / max(hosts, 1), 1)
    steady = result["steady"]
    result["targets"] = {
        "lag_p99_s": LAG_TARGET_S,
        "lag_p99_s_measured": round(steady["per_pair_p99_ms_max"] / 1000, 3) if steady["candles"] else None,
        "connections_per_node_max": math.ceil(len(pairs) / PAIRS_PER_CONNECTION),
        "connections_per_node_measured": max(
            (n["connections_open"] for n in result["per_node"].values()), default=0
        ),
    }
    return result


def _node_report(before: dict, after: dict, window_s: float) -> dict:
    out = {}
    for node, now in sorted(after.items()):
        earlier = before.get(node, {})
        spent = (now["budget"] or {}).get("weight_spent", 0) - (earlier.get("budget") or {}).get(
            "weight_spent", 0
        )
        out[node] = {
            "pairs": sum(len(h) for h in now["hosts"]),
            "pair_actors": len(now["hosts"]),
            "stream_actors": len(now["streams"]),
            "connections_open": sum(1 for s in now["streams"] if s["open"]),
            "connections_opened": sum(s["counters"]["connections_opened"] for s in now["streams"]),
            "rest_weight_per_min": round(spent / window_s * 60, 1),
        }
    return out


async def _kill_one(
    cluster: LocalCluster,
    supervisor: ray.actor.ActorHandle,
    db: Database,
    replay: Replay,
    pairs: list[str],
    names: dict[str, str],
) -> dict:
    """Kill the last worker node; time until its pairs are live elsewhere and every pair caught up."""
    victim = cluster.workers[-1].name
    victim_id = names[victim]
    placement = await supervisor.placement.remote()
    moved = sorted(s for s, host in placement.items() if _node_of(host) == victim_id)
    killed_at = time.monotonic()
    killed_open = replay.clock.now() // MINUTE_MS * MINUTE_MS
    cluster.kill(victim)

    async def placed_elsewhere() -> bool:
        now = await supervisor.placement.remote()
        return all(s in now and _node_of(now[s]) != victim_id for s in pairs)

    await until(placed_elsewhere, RECOVERY_TIMEOUT_S, "the killed node's pairs placed on the others")
    replaced_s = time.monotonic() - killed_at
    target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS

    async def caught_up() -> bool:
        async with db.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT symbol, last_candle_time FROM symbols")
            last = {r[0]: r[1] for r in rows}
        return all(last.get(s) is not None and last[s].timestamp() * 1000 >= target for s in pairs)

    await until(caught_up, RECOVERY_TIMEOUT_S, "every pair caught up after the kill")
    return {
        "node": victim,
        "pairs_moved": len(moved),
        "killed_at_exchange_minute": killed_open,
        "placed_elsewhere_after_s": round(replaced_s, 1),
        "caught_up_after_s": round(time.monotonic() - killed_at, 1),
        "placement_after": {
            name: sum(
                1 for host in (await supervisor.placement.remote()).values() if _node_of(host) == node_id
            )
            for name, node_id in names.items()
        },
    }


async def run_scale_bench(
    server_url: URL | str,
    pairs: int,
    nodes: int,
    speed: float,
    measure_s: float,
    kill: bool = True,
    pairs_per_actor: int = PAIRS_PER_ACTOR,
) -> dict:
    """``pairs`` replay pairs (BTCUSDT and clones of it) on ``nodes`` worker nodes at ``speed``×."""
    result: dict = {"benchmark": "scale", "machine_before": machine()}
    async with scratch_database(server_url, SCALE_DB) as url:
        config = ReplayConfig(speed=speed, pairs=[PAIR], clones={PAIR: pairs - 1} if pairs > 1 else {})
        with replay_process(config) as replay:
            result.update(await cluster_once(url, replay, nodes, measure_s, kill, pairs_per_actor))
    result["machine_after"] = machine()
    return result
