"""The training scheduler as it runs: a detached Ray actor on real Ray, the replay exchange's clock.

It trains a pair that turns live without being asked, carries out a request with progress that
readers can see, and when it is killed mid-sweep Ray brings it back, the interrupted command is
retried and the served models stay exactly as they were until a training completes.
"""

from __future__ import annotations

import psutil
import pytest
import ray
from sqlalchemy import update

from cryptocast.actors.ray_runtime import start_ray, stop_ray
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.sql import command_queue
from cryptocast.sql.schema import symbols
from cryptocast.tune import registry
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.history import HistoryNeeds
from cryptocast.tune.predictor import LSTM
from cryptocast.tune.scheduler import ScheduleOptions
from cryptocast.tune.service import SCHEDULER_CPUS, TrainingConfig, TrainingScheduler
from cryptocast.tune.sweep import RAY_CPUS
from cryptocast.tune.training_run import TrainOptions
from tests.helpers import eventually
from tests.tune.tune_data import btc, load_pair

HOUR_MS = 3_600_000
WAIT_S = 240.0
POLL_S = 0.2
MONDAY_10H_MS = 1_741_564_800_000 + 10 * HOUR_MS  # 2025-03-10 10:00 UTC: the daily slot (02:00) is hours away
TINY = TrainOptions(
    trials=2,
    epochs=2,
    days=2,
    needs=HistoryNeeds.fixed(
        SplitSpans(val_ms=3 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=12 * HOUR_MS), 6 * HOUR_MS
    ),
    period_ms=2 * HOUR_MS,
)
pytestmark = [pytest.mark.slow, pytest.mark.embedded_only]


@pytest.fixture(scope="module")
def local_ray():
    start_ray(num_cpus=RAY_CPUS)
    yield
    stop_ray()


async def test_trains_a_new_pair_a_request_and_survives_a_kill_mid_sweep(
    db, db_url, tmp_path, local_ray
) -> None:
    sid = await load_pair(db, "BTCUSDT", btc(2.0), status="backfilling")
    async with ReplayServer(
        ReplayConfig(speed=1.0, pairs=["BTCUSDT"], exchange_start_ms=MONDAY_10H_MS)
    ) as replay:
        config = _config(db_url, replay, tmp_path)
        free_before = ray.available_resources()["CPU"]
        actor = TrainingScheduler.options(max_restarts=-1).remote(config)
        try:
            # alive and idle while the pair backfills; it holds a sliver of a CPU and runs niced like a trial
            status = await actor.status.remote()
            assert status["running"] == [] and status["niceness"] == 10
            assert await eventually(
                lambda: _alive(db), "the scheduler alive", timeout_s=WAIT_S, every_s=POLL_S
            )
            assert free_before - ray.available_resources()["CPU"] == pytest.approx(SCHEDULER_CPUS)
            assert await command_queue.find(db) == []

            # backfill done: the first training is queued and carried out without anyone asking
            async with db.begin() as conn:
                await conn.execute(update(symbols).where(symbols.c.id == sid).values(status="live"))
            first = await eventually(
                lambda: _finished(db, "new_pair"),
                "the new pair's first training finished",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert first["status"] == "done", first["error"]
            assert first["result"]["baseline"]["version"] == 2 and first["result"]["lstm"]["version"] == 3
            assert len(first["result"]["gate"]) == 4 and first["result"]["trials"] == 2

            # a request: running with progress (trial i of n, best score so far), then done
            request = await command_queue.submit_training(
                db, "retrain", "BTCUSDT", "request", "asked in a test"
            )
            running = await eventually(
                lambda: _in_sweep(db, request),
                f"command {request} in its sweep",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert running["progress"]["trials"] == 2 and running["progress"]["elapsed_s"] >= 0
            assert [c["id"] for c in (await actor.status.remote())["running"]] == [request]
            done = await eventually(
                lambda: _finished_id(db, request),
                f"command {request} finished",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert done["status"] == "done" and done["result"]["lstm"]["version"] == 5

            # killed in the middle of a sweep: Ray restarts it, the command is queued again and retried
            before = await registry.records(db, sid)
            killed = await command_queue.submit_training(
                db, "retrain", "BTCUSDT", "request", "killed in a test"
            )
            await eventually(
                lambda: _in_sweep(db, killed),
                f"command {killed} in its sweep",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            ray.kill(actor, no_restart=False)
            retried = await eventually(
                lambda: _retried(db, killed),
                f"command {killed} queued again",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert (
                retried["error"]
                == "interrupted: the training scheduler stopped; attempt 1 of 2, queued again"
            )
            assert (
                await registry.records(db, sid) == before
            )  # nothing half-registered, the champion untouched
            await registry.load_served(db, sid)  # and it still loads
            after = await eventually(
                lambda: _finished_id(db, killed),
                f"command {killed} finished",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert (after["status"], after["attempts"]) == ("done", 2), after["error"]
            assert next(r.version for r in await registry.records(db, sid) if r.kind == LSTM) == 7
        finally:
            ray.kill(actor, no_restart=True)


async def test_trainings_run_side_by_side_and_a_dead_training_process_is_one_interrupted_attempt(
    db, db_url, tmp_path, local_ray
) -> None:
    """With ``concurrency`` 2, two pairs' sweeps run at the same time, each in a task of its own;
    killing one task's process queues its command again (an attempt counted) and it is retried."""
    sids = [await load_pair(db, symbol, btc(2.0), status="backfilling") for symbol in PAIRS]
    async with ReplayServer(
        ReplayConfig(speed=1.0, pairs=["BTCUSDT"], exchange_start_ms=MONDAY_10H_MS)
    ) as replay:
        config = _config(db_url, replay, tmp_path, concurrency=2)
        actor = TrainingScheduler.options(max_restarts=-1).remote(config)
        try:
            requests = [
                await command_queue.submit_training(db, "retrain", symbol, "request", "side by side")
                for symbol in PAIRS
            ]
            both = await eventually(
                lambda: _all_in_sweep(db, requests),
                "both commands in their sweeps at once",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert [row["symbol"] for row in both] == PAIRS
            running = (await actor.status.remote())["running"]
            assert sorted(c["id"] for c in running) == sorted(requests)
            victims = [p for p in psutil.process_iter(["cmdline"]) if _carries_out(p)]
            assert len(victims) == 2, "each training runs in a task process of its own"
            victims[0].kill()
            retried = await eventually(
                lambda: _retried_any(db, requests),
                "the killed training queued again",
                timeout_s=WAIT_S,
                every_s=POLL_S,
            )
            assert retried["error"].startswith("interrupted: its training process ended")
            assert retried["error"].endswith("attempt 1 of 2, queued again")
            done = [
                await eventually(
                    lambda r=r: _finished_id(db, r), f"command {r} finished", timeout_s=WAIT_S, every_s=POLL_S
                )
                for r in requests
            ]
            assert [d["status"] for d in done] == ["done", "done"], [d["error"] for d in done]
            assert sorted(d["attempts"] for d in done) == [1, 2]
            for sid in sids:  # one LSTM each: the killed attempt registered nothing
                assert len([r for r in await registry.records(db, sid) if r.kind == LSTM]) == 1
        finally:
            ray.kill(actor, no_restart=True)


PAIRS = ["BTCUSDT", "ETHUSDT"]


def _carries_out(process: psutil.Process) -> bool:
    return any("carry_out" in part for part in process.info["cmdline"] or [])


async def _all_in_sweep(db, command_ids: list[int]) -> list[dict] | None:
    rows = [await _in_sweep(db, c) for c in command_ids]
    return rows if all(rows) else None  # type: ignore[return-value]


async def _retried_any(db, command_ids: list[int]) -> dict | None:
    for command_id in command_ids:
        if (row := await _retried(db, command_id)) is not None:
            return row
    return None


def _config(db_url, replay: ReplayServer, tmp_path, concurrency: int = 1) -> TrainingConfig:
    return TrainingConfig(
        db_url.render_as_string(hide_password=False),
        replay.rest_url,
        str(tmp_path / "models"),
        str(tmp_path / "tune"),
        TINY,
        ScheduleOptions(max_days=2),
        concurrency=concurrency,
    )


async def _alive(db) -> bool:
    return command_queue.is_alive(await command_queue.service(db, command_queue.SCHEDULER_SERVICE))


async def _finished(db, trigger: str) -> dict | None:
    rows = [
        r for r in await command_queue.find(db, symbol="BTCUSDT") if r["payload"].get("trigger") == trigger
    ]
    return rows[0] if rows and rows[0]["status"] in ("done", "failed") else None


async def _finished_id(db, command_id: int) -> dict | None:
    row = await command_queue.get(db, command_id)
    return row if row["status"] in ("done", "failed") else None


async def _in_sweep(db, command_id: int) -> dict | None:
    row = await command_queue.get(db, command_id)
    progress = row["progress"] or {}
    return row if row["status"] == "running" and progress.get("phase") == "sweep" else None


async def _retried(db, command_id: int) -> dict | None:
    row = await command_queue.get(db, command_id)
    return row if row["error"] and row["status"] in ("pending", "running") else None
