"""The supervisor on a real Ray: pairs from command rows, killed hosts survived, nothing lost."""

from __future__ import annotations

import asyncio
import gc
import random
import time

import pytest
import ray
from sqlalchemy import select
from sqlalchemy.engine import URL

from cryptocast.actors.check import completeness
from cryptocast.actors.nodes import NAMESPACE, STREAM_PREFIX, named_actors
from cryptocast.actors.supervisor import start_supervisor
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.queries import submit_command
from cryptocast.sql.schema import commands, symbols
from tests.helpers import eventually

pytestmark = pytest.mark.embedded_only

PAIRS = ["BTCUSDT", "ETHUSDT"]
KILLS = 20
STREAM_KILLS = 3
FROZEN_AT_LEAST = 10_000  # a Ray worker holds ~150,000 objects after its imports


@pytest.fixture(scope="module")
def ray_local():
    from cryptocast.actors.ray_runtime import start_ray, stop_ray

    start_ray(num_cpus=2)
    yield
    stop_ray()


async def _states(db: Database) -> dict[str, str]:
    async with db.connect() as conn:
        return dict((await conn.execute(select(symbols.c.symbol, symbols.c.status))).all())


@pytest.mark.slow
async def test_supervisor_survives_twenty_kills_with_no_missing_minute(ray_local, db_url: URL) -> None:
    db = Database(db_url)
    url = db_url.render_as_string(hide_password=False)
    async with ReplayServer(ReplayConfig(speed=120.0, pairs=PAIRS, history_ms=2 * 60 * MINUTE_MS)) as replay:
        for pair in PAIRS:
            await submit_command(db, "add_pair", pair)
        await submit_command(db, "add_pair", "NOSUCHPAIR")
        supervisor = start_supervisor(url, replay.rest_url, replay.stream_url, lookback_ms=None)
        try:
            await eventually(
                lambda: _states(db),
                f"{PAIRS} live",
                timeout_s=60,
                every_s=0.2,
                until=lambda states: all(states.get(p) == "live" for p in PAIRS),
            )
            async with db.connect() as conn:
                refused = (
                    await conn.execute(
                        select(commands.c.status, commands.c.error).where(commands.c.symbol == "NOSUCHPAIR")
                    )
                ).one()
            assert refused.status == "failed" and "does not list" in refused.error
            assert "NOSUCHPAIR" not in await _states(db)

            rng = random.Random(4)
            restart_s = []
            for _ in range(KILLS):
                pair = rng.choice(PAIRS)
                # A kill restarts every pair of the host, each after its own back-off: wait for all.
                placement = await eventually(
                    supervisor.placement.remote,
                    f"{PAIRS} placed",
                    timeout_s=90,
                    every_s=0.2,
                    until=lambda placed: set(PAIRS) <= set(placed),
                )
                victim = ray.get_actor(placement[pair], namespace=NAMESPACE)
                old = victim._actor_id
                t0 = time.monotonic()
                ray.kill(victim, no_restart=True)
                await eventually(
                    lambda p=pair, o=old: _replaced_and_live(supervisor, p, o),
                    f"{pair} replaced and live",
                    timeout_s=90,
                    every_s=0.2,
                )
                restart_s.append(time.monotonic() - t0)
                await asyncio.sleep(rng.uniform(0.2, 1.0))
            target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await eventually(
                lambda: _caught_up(db, target), f"{PAIRS} caught up to {target}", timeout_s=90, every_s=0.2
            )
            snapshot = await supervisor.snapshot.remote()
        finally:
            await supervisor.shutdown.remote()
            ray.kill(supervisor, no_restart=True)
    report = {c.symbol: c for c in await completeness(db)}
    await db.dispose()
    for pair in PAIRS:
        assert report[pair].missing == 0, report[pair]
        assert report[pair].duplicates == 0
    # every kill led to a restart (a loaded machine may add restarts for slow status answers)
    assert sum(snapshot["pairs"][p]["restarts"] for p in PAIRS) >= KILLS
    print(
        f"restart to live: median {sorted(restart_s)[len(restart_s) // 2]:.2f} s, max {max(restart_s):.2f} s"
    )


@pytest.mark.slow
async def test_killed_stream_actors_lose_no_minute(ray_local, db_url: URL) -> None:
    """Ray restarts a killed stream actor empty; each pair's watchdog finds itself no longer carried,
    subscribes again and repairs over REST what closed meanwhile."""
    db = Database(db_url)
    url = db_url.render_as_string(hide_password=False)
    async with ReplayServer(ReplayConfig(speed=120.0, pairs=PAIRS, history_ms=2 * 60 * MINUTE_MS)) as replay:
        for pair in PAIRS:
            await submit_command(db, "add_pair", pair)
        supervisor = start_supervisor(url, replay.rest_url, replay.stream_url, lookback_ms=None)
        try:
            await eventually(
                lambda: _states(db),
                f"{PAIRS} live",
                timeout_s=60,
                every_s=0.2,
                until=lambda states: all(states.get(p) == "live" for p in PAIRS),
            )
            (name,) = named_actors(STREAM_PREFIX)
            stream = ray.get_actor(name, namespace=NAMESPACE)
            for _ in range(STREAM_KILLS):
                await eventually(stream.status.remote, "both pairs carried", until=lambda s: s["pairs"] == 2)
                ray.kill(stream, no_restart=False)  # Ray restarts it, carrying nobody
                await asyncio.sleep(2.0)
            await eventually(
                stream.status.remote, "both pairs carried again", until=lambda s: s["pairs"] == 2
            )
            target = replay.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await eventually(
                lambda: _caught_up(db, target), f"{PAIRS} caught up to {target}", timeout_s=90, every_s=0.2
            )
            host = ray.get_actor((await supervisor.placement.remote())[PAIRS[0]], namespace=NAMESPACE)
            statuses = await host.status.remote()
            # Both processes froze their start-up heaps (``heap.settle``), the restarted stream too.
            frozen = [await actor.__ray_call__.remote(_frozen) for actor in (host, stream)]
        finally:
            await supervisor.shutdown.remote()
            ray.kill(supervisor, no_restart=True)
    report = {c.symbol: c for c in await completeness(db)}
    await db.dispose()
    for pair in PAIRS:
        assert report[pair].missing == 0, report[pair]
        assert report[pair].duplicates == 0
        assert statuses[pair]["counters"]["reconnects"] >= STREAM_KILLS, statuses[pair]["counters"]
    assert min(frozen) >= FROZEN_AT_LEAST, frozen
    # The supervisor's shutdown ends the stream actors too (a killed actor's name goes a moment later).
    await eventually(
        lambda: named_actors(STREAM_PREFIX), "no stream actor left", until=lambda names: not names
    )


def _frozen(_actor: object) -> int:
    """Run in an actor's process: the objects its collector no longer walks."""
    return gc.get_freeze_count()


async def _replaced_and_live(supervisor, pair: str, old_id) -> bool:
    host = (await supervisor.placement.remote()).get(pair)
    try:
        actor = ray.get_actor(host, namespace=NAMESPACE) if host else None
    except ValueError:
        return False
    if actor is None or actor._actor_id == old_id:
        return False
    try:
        status = await actor.status.remote()
    except ray.exceptions.RayActorError:  # replaced again by the supervisor meanwhile
        return False
    return status.get(pair, {}).get("state") == "live"


async def _caught_up(db: Database, target_ms: int) -> bool:
    async with db.connect() as conn:
        rows = (
            (await conn.execute(select(symbols.c.last_candle_time).where(symbols.c.symbol.in_(PAIRS))))
            .scalars()
            .all()
        )
    return len(rows) == len(PAIRS) and all(r is not None and r.timestamp() * 1000 >= target_ms for r in rows)
