"""Commands carried out to their end on a real database: readable failures, rollback, recalibration."""

from __future__ import annotations

from cryptocast.sql import command_queue
from cryptocast.sql.queries import submit_command
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline
from cryptocast.tune.jobs import ProgressWriter, Work, execute, recalibrate_instead
from cryptocast.tune.predictor import PERSISTENCE
from cryptocast.tune.training_run import TrainOptions
from tests.tune.tune_data import btc, load_pair


def _work(db, tmp_path) -> Work:
    return Work(db, registry.ModelStore(str(tmp_path / "models")), TrainOptions(), tmp_path / "tune")


async def _run(db, tmp_path, kind: str, symbol: str) -> dict:
    await command_queue.submit_training(db, kind, symbol, "request", "asked")
    command = await command_queue.claim_next_training(db)
    await execute(_work(db, tmp_path), command)
    return await command_queue.get(db, command["id"])


async def test_too_little_history_fails_with_how_much_more_is_needed(db, tmp_path) -> None:
    await load_pair(db, "BTCUSDT", btc(2.0))
    row = await _run(db, tmp_path, "retrain", "BTCUSDT")
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["error"].startswith("needs 8.0 more days of history (has 2.0"), row["error"]


async def test_a_failed_daily_retrain_still_recalibrates_that_day(db, tmp_path) -> None:
    sid = await load_pair(db, "BTCUSDT", btc(3.0))
    first = await ensure_baseline(db, registry.ModelStore(str(tmp_path / "models")), sid)
    await command_queue.submit_training(db, "retrain", "BTCUSDT", "daily", "the daily slot")
    daily = await command_queue.claim_next_training(db)
    assert await execute(_work(db, tmp_path), daily) == "failed"  # 3 days: too little for a retrain
    fallback = await recalibrate_instead(db, await command_queue.get(db, daily["id"]))
    row = await command_queue.get(db, fallback)
    assert (row["kind"], row["payload"]["trigger"]) == ("recalibrate", "daily")
    assert (
        row["payload"]["reason"]
        == f"the daily slot's retrain (command {daily['id']}) failed: recalibrating instead"
    )
    assert await execute(_work(db, tmp_path), await command_queue.claim_next_training(db)) == "done"
    assert (await registry.current(db, sid, PERSISTENCE)).version == first.version + 1
    # a request that fails is the user's to see; it queues nothing by itself
    request = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    await execute(_work(db, tmp_path), await command_queue.claim_next_training(db))
    assert await recalibrate_instead(db, await command_queue.get(db, request)) is None


async def test_an_unknown_pair_fails_readably(db, tmp_path) -> None:
    row = await _run(db, tmp_path, "retrain", "NOSUCHPAIR")
    assert (row["status"], row["error"]) == ("failed", "NOSUCHPAIR is not tracked")


async def test_recalibration_without_a_champion_says_so(db, tmp_path) -> None:
    await load_pair(db, "BTCUSDT", btc(0.1))  # 144 minutes: below the baseline's 240
    row = await _run(db, tmp_path, "recalibrate", "BTCUSDT")
    assert row["status"] == "failed" and "has no persistence champion yet" in row["error"]


async def test_recalibration_is_done_with_the_versions_it_registered(db, tmp_path) -> None:
    sid = await load_pair(db, "BTCUSDT", btc(3.0))
    first = await ensure_baseline(db, registry.ModelStore(str(tmp_path / "models")), sid)
    row = await _run(db, tmp_path, "recalibrate", "BTCUSDT")
    assert row["status"] == "done" and row["error"] is None
    assert row["result"]["baseline"] == {"version": first.version + 1, "from": first.version}
    assert row["result"]["seconds"] >= 0 and "lstm" not in row["result"]
    assert (await registry.current(db, sid, PERSISTENCE)).version == first.version + 1


async def test_rollback_without_a_champion_fails_and_names_the_reason(db, tmp_path) -> None:
    await load_pair(db, "BTCUSDT", btc(0.5))
    command = await submit_command(db, "rollback", "BTCUSDT")
    [claimed] = await command_queue.claim_pending(db, "rollback")
    assert claimed["id"] == command
    await execute(_work(db, tmp_path), claimed)
    row = await command_queue.get(db, command)
    assert row["status"] == "failed" and "has no LSTM champion to roll back" in row["error"]


async def test_progress_is_written_with_its_elapsed_time(db) -> None:
    command = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    await command_queue.claim_next_training(db)
    progress = ProgressWriter(db, command)
    progress.tell({"phase": "sweep", "trial": 3, "trials": 8, "best_val_skill": 0.01, "eta_s": 50.0})
    await progress.flush()
    stored = (await command_queue.get(db, command))["progress"]
    assert stored["trial"] == 3 and stored["best_val_skill"] == 0.01 and stored["elapsed_s"] >= 0
    await command_queue.finish(db, command, result={})
    progress.tell({"phase": "gating"})
    await progress.flush()  # a finished command keeps the progress it ended with
    assert (await command_queue.get(db, command))["progress"]["phase"] == "sweep"
