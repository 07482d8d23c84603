"""The live loop's recovery and self-checks: catch-up after a restart, the retrain trigger, data lag.

Each test starts from the state it needs (the fixtures of ``conftest.py``), whatever ran before it:
the restart goes on from the pair's newest candle once it is forecast, and the retrain trigger from
an empty command queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest
import ray
from ray import serve
from sqlalchemy import delete, func, select

from cryptocast.records import ms_to_dt
from cryptocast.serve.live import LIVE_DEPLOYMENT
from cryptocast.sql.schema import commands, models, predictions
from cryptocast.sql.writer import CandleWriter
from tests.helpers import eventually
from tests.serve.conftest import PAIR, candles_after_newest, to_records
from tests.tune.tune_data import btc

pytestmark = pytest.mark.slow

SERVE_NAMESPACE = "serve"
MISSED = 5  # candles that close while the predictor is down
RESTART_TIMEOUT_S = 120.0
BAD_ROWS = 40  # more than the fixture's skill_min_samples (30)
BAD_ERROR = 1000.0  # dollars off: far worse than persistence's minute-to-minute error
BAD_BAND = 100.0  # the bad forecasts' 80 % half-width (95 %: 1.5 times): bands as every served row has
LAG_SLACK_S = 5.0  # the router extrapolates between asks of the exchange clock


def _live_replica() -> ray.actor.ActorHandle:
    names = [
        a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{LIVE_DEPLOYMENT}#" in a["name"]
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0]["name"], namespace=names[0]["namespace"])


async def _late_origins(served, origins: list[int]) -> set[int]:
    async with served.db.connect() as conn:
        rows = await conn.execute(
            select(predictions.c.origin_time, predictions.c.late, predictions.c.horizon).where(
                predictions.c.symbol_id == served.symbol_id,
                predictions.c.served,
                predictions.c.origin_time.in_([ms_to_dt(o) for o in origins]),
            )
        )
        found = rows.all()
    return {int(r.origin_time.timestamp() * 1000) for r in found if r.late}


async def _dead(actor: ray.actor.ActorHandle) -> bool:
    """``ray.kill`` only asks; a replica still running could take a notification meant for its heir."""
    try:
        await actor.__ray_ready__.remote()
    except ray.exceptions.RayActorError:
        return True
    return False


async def test_restarted_predictor_catches_up_and_flags_late(served, client, settled) -> None:
    # the minutes right after the newest one, which is forecast already (``settled``): a full window each
    missed = await candles_after_newest(served, MISSED)
    origins = [c.open_time for c in missed]
    replica = _live_replica()
    ray.kill(replica, no_restart=True)  # Serve notices and starts a new replica
    await eventually(lambda: _dead(replica), "the killed live replica gone", timeout_s=30, every_s=0.25)
    await CandleWriter(served.db).write(served.symbol_id, missed)  # nobody listens while it is down
    await eventually(
        lambda: _all_late(served, origins),
        f"late forecasts of the {MISSED} missed minutes",
        timeout_s=RESTART_TIMEOUT_S,
        every_s=0.25,
    )
    reply = (await client.get(f"/pairs/{PAIR}/predictions/latest")).json()
    assert reply["origin_time"].startswith(ms_to_dt(origins[-1]).isoformat()[:19])
    assert {p["horizon"] for p in reply["predictions"]} == {1, 5, 15, 30} and all(
        p["late"] for p in reply["predictions"]
    )


async def _all_late(served, origins: list[int]) -> set[int] | None:
    late = await _late_origins(served, origins)
    return late if late == set(origins) else None


async def _served_model(served) -> int:
    async with served.db.connect() as conn:
        return (
            await conn.execute(
                select(func.max(models.c.id)).where(
                    models.c.symbol_id == served.symbol_id, models.c.status == "champion"
                )
            )
        ).scalar_one()


async def _retrains(served) -> int:
    async with served.db.connect() as conn:
        return (
            await conn.execute(
                select(func.count())
                .select_from(commands)
                .where(commands.c.kind == "retrain", commands.c.symbol == PAIR)
            )
        ).scalar_one()


def _skill_finding(findings: list[str]) -> bool:
    return any(f.startswith("h=1: live skill") and "below persistence" in f for f in findings)


async def test_skill_below_persistence_asks_for_one_retrain_per_window(served, no_commands) -> None:
    live = serve.get_deployment_handle(LIVE_DEPLOYMENT, app_name="router")
    assert await live.check_skill.remote(served.symbol_id, PAIR) == [] and await _retrains(served) == 0

    model_id = await _served_model(served)
    history = to_records(btc(0.5))[:BAD_ROWS]  # origins whose 1-minute target is stored
    # served rows as the live loop stores them, bands included (no earlier test's forecasts of the
    # model need be in the window for their coverage to be scored)
    bad = [
        {
            "symbol_id": served.symbol_id,
            "model_id": model_id,
            "origin_time": ms_to_dt(c.open_time),
            "horizon": 1,
            "predicted": c.close + BAD_ERROR,
            "served": True,
            "lower_80": c.close + BAD_ERROR - BAD_BAND,
            "upper_80": c.close + BAD_ERROR + BAD_BAND,
            "lower_95": c.close + BAD_ERROR - 1.5 * BAD_BAND,
            "upper_95": c.close + BAD_ERROR + 1.5 * BAD_BAND,
        }
        for c in history
    ]
    async with served.db.begin() as conn:
        await conn.execute(predictions.insert(), bad)
    try:
        assert _skill_finding(await live.check_skill.remote(served.symbol_id, PAIR))
        assert await _retrains(served) == 1
        async with served.db.connect() as conn:
            trigger, reason = (
                await conn.execute(
                    select(commands.c.payload["trigger"].astext, commands.c.payload["reason"].astext)
                )
            ).one()
        assert trigger == "drift" and "h=1: live skill" in reason
        async with served.db.begin() as conn:  # even once that retrain is done, the window allows no other
            await conn.execute(commands.update().values(status="done"))
        assert _skill_finding(await live.check_skill.remote(served.symbol_id, PAIR))
        assert await _retrains(served) == 1
    finally:
        async with served.db.begin() as conn:
            await conn.execute(
                delete(predictions).where(
                    predictions.c.origin_time.in_([r["origin_time"] for r in bad]),
                    predictions.c.model_id == model_id,
                )
            )


async def test_data_lag_is_on_the_exchange_clock(served, client) -> None:
    clock = served.replay.clock
    ahead_s = (clock.now() - time.time() * 1000) / 1000
    assert ahead_s > 60, "the replay runs 60x: its clock is well ahead of wall time by now"
    await client.get(f"/pairs/{PAIR}/candles", params={"limit": 1})  # a first ask of the exchange clock
    await asyncio.sleep(1.5)  # a second one, later, gives the router the clock's rate
    for _ in range(3):
        before = clock.now()
        body = (await client.get(f"/pairs/{PAIR}/candles", params={"limit": 1})).json()
        after = clock.now()
        last_close_s = datetime.fromisoformat(body["freshness"]["last_candle_time"]).timestamp() + 60
        lag = body["freshness"]["data_lag_s"]
        assert (
            before / 1000 - last_close_s - LAG_SLACK_S <= lag <= after / 1000 - last_close_s + LAG_SLACK_S
        ), (
            lag,
            before,
            after,
            json.dumps(body["freshness"]),
        )
        await asyncio.sleep(0.3)
