"""Training commands as a queue on real PostgreSQL: one open per pair, fair order, recovery, heartbeats."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from cryptocast.sql import command_queue
from cryptocast.sql.queries import submit_command


async def test_one_open_training_per_pair(db) -> None:
    first = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    assert first is not None
    assert await command_queue.submit_training(db, "recalibrate", "BTCUSDT", "daily", "slot") is None
    with pytest.raises(IntegrityError):  # the index holds whoever inserts, not only this module
        await submit_command(db, "retrain", "BTCUSDT")
    assert (await command_queue.open_training(db, "BTCUSDT"))["id"] == first
    other = await command_queue.submit_training(db, "retrain", "ETHUSDT", "request", "asked")
    assert other is not None
    claimed = await command_queue.claim_next_training(db)
    await command_queue.finish(db, claimed["id"], result={"ok": True})
    again = await command_queue.submit_training(db, "retrain", "BTCUSDT", "daily", "slot")
    assert again is not None and again != first  # a finished one leaves room for the next


async def test_queue_order_recalibrations_first_then_first_in_first_out(db) -> None:
    ids = {}
    for symbol, kind in (
        ("BTCUSDT", "retrain"),
        ("ETHUSDT", "retrain"),
        ("LTCBTC", "recalibrate"),
        ("XRPBTC", "retrain"),
    ):
        ids[symbol] = await command_queue.submit_training(db, kind, symbol, "daily", "slot")
    order = []
    while (claimed := await command_queue.claim_next_training(db)) is not None:
        assert (
            claimed["status"] == "running"
            and claimed["attempts"] == 1
            and claimed["progress"] == {"phase": "starting"}
        )
        order.append(claimed["symbol"])
    assert order == ["LTCBTC", "BTCUSDT", "ETHUSDT", "XRPBTC"]


async def test_two_consumers_never_claim_the_same_command(db) -> None:
    for symbol in ("BTCUSDT", "ETHUSDT", "LTCBTC"):
        await command_queue.submit_training(db, "retrain", symbol, "request", "asked")
    claimed = await asyncio.gather(*(command_queue.claim_next_training(db) for _ in range(5)))
    ids = [c["id"] for c in claimed if c is not None]
    assert len(ids) == 3 and len(set(ids)) == 3


async def test_interrupted_runs_are_retried_once_then_failed(db) -> None:
    command = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    await command_queue.claim_next_training(db)
    await command_queue.set_progress(db, command, {"phase": "sweep", "trial": 1, "trials": 8})
    assert (await command_queue.get(db, command))["progress"]["trial"] == 1
    recovered = await command_queue.recover_interrupted(db, "the scheduler died")
    assert [(r["id"], r["status"]) for r in recovered] == [(command, "pending")]
    row = await command_queue.get(db, command)
    assert (
        row["progress"] is None
        and row["error"] == "interrupted: the scheduler died; attempt 1 of 2, queued again"
    )

    assert (await command_queue.claim_next_training(db))["attempts"] == 2
    recovered = await command_queue.recover_interrupted(db, "the scheduler died")
    row = await command_queue.get(db, command)
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["error"] == "interrupted: the scheduler died; attempt 2 of 2, not retried"
    assert await command_queue.recover_interrupted(db, "again") == []  # nothing left running


async def test_one_dead_training_process_requeues_its_command_and_leaves_the_others_running(db) -> None:
    first = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    second = await command_queue.submit_training(db, "retrain", "ETHUSDT", "request", "asked")
    await command_queue.claim_next_training(db)
    await command_queue.claim_next_training(db)
    recovered = await command_queue.recover_interrupted(db, "its process ended", only=[second])
    assert [(r["id"], r["status"]) for r in recovered] == [(second, "pending")]
    assert (await command_queue.get(db, first))["status"] == "running"


async def test_a_stopped_run_is_queued_again_without_using_an_attempt(db) -> None:
    command = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    await command_queue.claim_next_training(db)
    await command_queue.requeue(db, command, "the system stopped")
    row = await command_queue.get(db, command)
    assert (row["status"], row["attempts"], row["started_at"]) == ("pending", 0, None)
    assert row["error"] == "interrupted: the system stopped; queued again"


async def test_heartbeats_tell_a_live_consumer_from_none(db) -> None:
    assert await command_queue.service(db, "training-scheduler") is None
    assert not command_queue.is_alive(None)
    await command_queue.beat(db, "training-scheduler", {"running": None}, started=True)
    beat = await command_queue.service(db, "training-scheduler")
    assert command_queue.is_alive(beat) and beat["details"] == {"running": None}
    assert not command_queue.is_alive(beat | {"age_s": command_queue.ALIVE_S + 1})


async def test_listing_filters_and_newest_first(db) -> None:
    a = await command_queue.submit_training(db, "retrain", "BTCUSDT", "request", "asked")
    b = await submit_command(db, "add_pair", "LTCBTC")
    c = await command_queue.submit_training(db, "retrain", "ETHUSDT", "drift", "skill")
    assert [r["id"] for r in await command_queue.find(db)] == [c, b, a]
    assert [r["id"] for r in await command_queue.find(db, symbol="BTCUSDT")] == [a]
    assert [r["id"] for r in await command_queue.find(db, kind="retrain", status="pending", limit=1)] == [c]
    assert await command_queue.ever_triggered(
        db, "ETHUSDT", "drift"
    ) and not await command_queue.ever_triggered(db, "ETHUSDT", "daily")
