"""The scheduler as a Ray actor on real Ray: it trains a pair that turns live and on a command row."""

from __future__ import annotations

from functools import partial

import pytest
import ray
from sqlalchemy import select, update
from tune_data import btc, load_pair

from cryptocast.actors.ray_runtime import start_ray, stop_ray
from cryptocast.sql.queries import submit_command
from cryptocast.sql.schema import commands, symbols
from cryptocast.tune import registry
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.pipeline import TrainOptions
from cryptocast.tune.predictor import LSTM, PERSISTENCE
from cryptocast.tune.scheduler import SCHEDULER_CPUS, scheduler_actor
from cryptocast.tune.sweep import RAY_CPUS

HOUR_MS = 3_600_000
MONDAY_MS = 1_741_564_800_000  # 2025-03-10 00:00 UTC: before the first daily slot (02:00)
TINY = TrainOptions(
    trials=1, epochs=1, days=2, spans=SplitSpans(val_ms=3 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=12 * HOUR_MS),
    period_ms=2 * HOUR_MS,
)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():  # noqa: ANN201
    start_ray(num_cpus=RAY_CPUS)
    yield
    stop_ray()


async def _lstm_versions(db, sid: int) -> list[int]:  # noqa: ANN001
    return [r.version for r in await registry.records(db, sid) if r.kind == LSTM]


async def test_actor_trains_a_pair_turning_live_and_on_a_retrain_command(db, db_url, tmp_path, local_ray) -> None:  # noqa: ANN001
    sid = await load_pair(db, "BTCUSDT", btc(2.0), status="backfilling")
    stopped_clock = partial(int, MONDAY_MS)  # the exchange clock, held at one instant
    free_before = ray.available_resources()["CPU"]  # Ray may be shared with other tests' actors
    actor = scheduler_actor().remote(
        db_url.render_as_string(hide_password=False), str(tmp_path / "models"), str(tmp_path / "ray"), stopped_clock, TINY
    )
    try:
        assert await actor.tick.remote() == []  # still backfilling: nothing to do
        # the actor holds a sliver of a CPU, leaving the rest to trials and ingestion
        assert free_before - ray.available_resources()["CPU"] == pytest.approx(SCHEDULER_CPUS)

        async with db.begin() as conn:
            await conn.execute(update(symbols).where(symbols.c.id == sid).values(status="live"))
        jobs = await actor.tick.remote()
        assert [(j.symbol, j.reason) for j in jobs] == [("BTCUSDT", "new pair: backfill complete and no LSTM yet")]
        assert len(await _lstm_versions(db, sid)) == 1
        assert await registry.current(db, sid, PERSISTENCE) is not None

        assert await actor.tick.remote() == []  # it has an LSTM now; its daily slot is hours away
        command = await submit_command(db, "retrain", "BTCUSDT")
        jobs = await actor.tick.remote()
        assert [(j.symbol, j.reason) for j in jobs] == [("BTCUSDT", f"command {command}")]
        async with db.connect() as conn:
            row = (await conn.execute(select(commands.c.status, commands.c.error).where(commands.c.id == command))).one()
        assert (row.status, row.error) == ("done", None)
        assert len(await _lstm_versions(db, sid)) == 2
    finally:
        await actor.close.remote()
        ray.kill(actor)
