"""The live loop's recovery and self-checks: catch-up after a restart, the retrain trigger, data lag.

Runs after ``test_models`` (file order): it continues the pair's history past the candles written
there.
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

from cryptocast.serve.live import LIVE_DEPLOYMENT
from cryptocast.sql.schema import commands, models, predictions, price_history
from cryptocast.sql.writer import CandleWriter, ms_to_dt
from tests.serve.conftest import PAIR, eventually, to_records
from tests.tune.tune_data import btc

pytestmark = pytest.mark.slow

SERVE_NAMESPACE = "serve"
MISSED = 5  # candles that close while the predictor is down
RESTART_TIMEOUT_S = 120.0
BAD_ROWS = 40  # more than the fixture's skill_min_samples (30)
BAD_ERROR = 1000.0  # dollars off: far worse than persistence's minute-to-minute error
LAG_SLACK_S = 5.0  # the router extrapolates between asks of the exchange clock


def _live_replica() -> ray.actor.ActorHandle:
    names = [
        a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{LIVE_DEPLOYMENT}#" in a["name"]
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0]["name"], namespace=names[0]["namespace"])


async def _late_origins(served, origins: list[int]) -> set[int]:  # noqa: ANN001
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


async def _settled(served) -> datetime | None:  # noqa: ANN001
    """The pair's newest candle, once its prediction is stored (the predictor is idle then)."""
    newest_candle = select(func.max(price_history.c.open_time)).where(price_history.c.symbol_id == served.symbol_id)
    newest_served = select(func.max(predictions.c.origin_time)).where(
        predictions.c.symbol_id == served.symbol_id, predictions.c.served
    )
    async with served.db.connect() as conn:
        candle = (await conn.execute(newest_candle)).scalar_one()
        predicted = (await conn.execute(newest_served)).scalar_one()
    return candle if candle is not None and candle == predicted else None


async def _dead(actor: ray.actor.ActorHandle) -> bool:
    """``ray.kill`` only asks; a replica still running could take a notification meant for its heir."""
    try:
        await actor.__ray_ready__.remote()
    except ray.exceptions.RayActorError:
        return True
    return False


async def test_restarted_predictor_catches_up_and_flags_late(served, client) -> None:  # noqa: ANN001
    newest = await eventually(lambda: _settled(served), timeout=30)  # the last test's candle is predicted
    following = [c for c in to_records(btc(1.0)) if c.open_time > newest.timestamp() * 1000]
    missed = following[:MISSED]  # the minutes right after the newest predicted one: a full window each
    origins = [c.open_time for c in missed]
    replica = _live_replica()
    ray.kill(replica, no_restart=True)  # Serve notices and starts a new replica
    await eventually(lambda: _dead(replica), timeout=30)
    await CandleWriter(served.db).write(served.symbol_id, missed)  # nobody listens while it is down
    await eventually(lambda: _all_late(served, origins), timeout=RESTART_TIMEOUT_S)
    reply = (await client.get(f"/pairs/{PAIR}/predictions/latest")).json()
    assert reply["origin_time"].startswith(ms_to_dt(origins[-1]).isoformat()[:19])
    assert {p["horizon"] for p in reply["predictions"]} == {1, 5, 15, 30} and all(
        p["late"] for p in reply["predictions"]
    )


async def _all_late(served, origins: list[int]) -> set[int] | None:  # noqa: ANN001
    late = await _late_origins(served, origins)
    return late if late == set(origins) else None


async def _served_model(served) -> int:  # noqa: ANN001
    async with served.db.connect() as conn:
        return (await conn.execute(
            select(func.max(models.c.id)).where(models.c.symbol_id == served.symbol_id, models.c.status == "champion")
        )).scalar_one()  # fmt: skip


async def _retrains(served) -> int:  # noqa: ANN001
    async with served.db.connect() as conn:
        return (await conn.execute(
            select(func.count()).select_from(commands).where(commands.c.kind == "retrain", commands.c.symbol == PAIR)
        )).scalar_one()  # fmt: skip


def _skill_finding(findings: list[str]) -> bool:
    return any(f.startswith("h=1: live skill") and "below persistence" in f for f in findings)


async def test_skill_below_persistence_asks_for_one_retrain_per_window(served) -> None:  # noqa: ANN001
    live = serve.get_deployment_handle(LIVE_DEPLOYMENT, app_name="router")
    async with served.db.begin() as conn:
        await conn.execute(delete(commands))
    assert await live.check_skill.remote(served.symbol_id, PAIR) == [] and await _retrains(served) == 0

    model_id = await _served_model(served)
    history = to_records(btc(0.5))[:BAD_ROWS]  # origins whose 1-minute target is stored
    bad = [
        {"symbol_id": served.symbol_id, "model_id": model_id, "origin_time": ms_to_dt(c.open_time), "horizon": 1,
         "predicted": c.close + BAD_ERROR, "served": True}
        for c in history
    ]  # fmt: skip
    async with served.db.begin() as conn:
        await conn.execute(predictions.insert(), bad)
    try:
        assert _skill_finding(await live.check_skill.remote(served.symbol_id, PAIR))
        assert await _retrains(served) == 1
        async with served.db.connect() as conn:
            trigger, reason = (await conn.execute(select(commands.c.payload["trigger"].astext, commands.c.payload["reason"].astext))).one()
        assert trigger == "drift" and "h=1: live skill" in reason
        async with served.db.begin() as conn:  # even once that retrain is done, the window allows no other
            await conn.execute(commands.update().values(status="done"))
        assert _skill_finding(await live.check_skill.remote(served.symbol_id, PAIR))
        assert await _retrains(served) == 1
    finally:
        async with served.db.begin() as conn:
            await conn.execute(delete(predictions).where(predictions.c.origin_time.in_([r["origin_time"] for r in bad]),
                                                         predictions.c.model_id == model_id))  # fmt: skip
            await conn.execute(delete(commands))


async def test_data_lag_is_on_the_exchange_clock(served, client) -> None:  # noqa: ANN001
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
