"""A retrain's start and end reach the pair's metrics (``pair_metrics``, exported by ``/metrics``):
started and failed counted once each, the run's duration kept, and commands that are no retrain
left out."""

from __future__ import annotations

from cryptocast.serve.reads import fetch
from cryptocast.sql import command_queue, pairmetrics
from cryptocast.tune import registry
from cryptocast.tune.jobs import Work, execute
from cryptocast.tune.training_run import TrainOptions
from tests.tune.tune_data import btc, load_pair


async def _stored(db) -> dict[str, float]:
    return {row["name"]: row["value"] for row in await fetch(db, pairmetrics.READ_SQL)}


async def _execute(db, tmp_path, kind: str) -> str:
    await command_queue.submit_training(db, kind, "BTCUSDT", "request", "asked")
    work = Work(db, registry.ModelStore(str(tmp_path / "models")), TrainOptions(), tmp_path / "tune")
    return await execute(work, await command_queue.claim_next_training(db))


async def test_a_failed_retrain_is_counted_started_and_failed_with_its_duration(db, tmp_path) -> None:
    await load_pair(db, "BTCUSDT", btc(2.0))
    assert await _execute(db, tmp_path, "retrain") == "failed"  # 2 days: too little history
    stored = await _stored(db)
    assert {k: v for k, v in stored.items() if k != "training_last_run_duration_seconds"} == {
        "training_runs_started": 1.0,
        "training_runs_failed": 1.0,
    }
    assert 0 < stored["training_last_run_duration_seconds"] < 60
    await _execute(db, tmp_path, "recalibrate")  # a recalibration is no retrain: not counted
    after = await _stored(db)
    assert (after["training_runs_started"], after["training_runs_failed"]) == (1.0, 1.0)
    assert "training_runs_finished" not in after
