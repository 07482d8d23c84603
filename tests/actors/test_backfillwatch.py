"""Following a pair's backfill from another process, on a real database: what ``pairs add --wait`` sees.

The ingest actor writes the pair's row as it backfills; here the test plays that actor (and the
supervisor), row by row, and checks the follower reports each step, ends when the pair is live, and
tells a failed command, a pair that stopped, and a system that never picks the command up, apart;
then the same through the command a user types, against the replay exchange.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import URL

from cryptocast.actors.backfillwatch import BackfillFailed, BackfillState, follow_backfill
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from cryptocast.exitcodes import FAILURE, OK, USAGE
from cryptocast.records import MINUTE_MS
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol, submit_command
from cryptocast.sql.schema import commands, symbols
from tests.helpers import CLI, cli_env, eventually

EVERY_S = 0.02
STEPS = (0, 400, 800, 1000)  # minutes stored of 1,000


async def _pair_row(db: Database, symbol: str = "LTCBTC", **values: object) -> None:
    async with db.begin() as conn:
        await conn.execute(update(symbols).where(symbols.c.symbol == symbol).values(**values))


async def _command(db: Database, command: int, **values: object) -> None:
    async with db.begin() as conn:
        await conn.execute(update(commands).where(commands.c.id == command).values(**values))


async def _seen_until(states: list[BackfillState], count: int) -> None:
    while len(states) < count:
        await asyncio.sleep(EVERY_S)


async def test_follows_the_backfill_until_the_pair_is_live(db: Database) -> None:
    command = await submit_command(db, "add_pair", "LTCBTC")
    states: list[BackfillState] = []
    following = asyncio.create_task(follow_backfill(db, "LTCBTC", command, 30, states.append, EVERY_S))
    await _seen_until(states, 2)  # no row yet: the supervisor has not carried the command out
    await add_symbol(db, "LTCBTC", "LTC", "BTC")
    await _command(db, command, status="done")
    for done in STEPS:
        await _pair_row(db, status="backfilling", backfill_done=done, backfill_total=STEPS[-1])
        await _seen_until(states, len(states) + 2)
    await _pair_row(db, status="live")
    final = await asyncio.wait_for(following, 30)
    assert final == BackfillState("live", STEPS[-1], STEPS[-1], None)
    assert states[0] == BackfillState(None, 0, 0, None)
    backfilling = [s.done for s in states if s.status == "backfilling"]
    assert sorted(set(backfilling)) == list(STEPS) and backfilling == sorted(backfilling)


async def test_a_failed_command_ends_the_wait_with_its_reason(db: Database) -> None:
    command = await submit_command(db, "add_pair", "LTCBTC")
    await _command(db, command, status="failed", error="LTCBTC: the exchange does not list it")
    with pytest.raises(BackfillFailed, match="does not list it"):
        await follow_backfill(db, "LTCBTC", command, 30, lambda _: None, EVERY_S)


async def test_a_previous_runs_error_waits_for_the_command_and_a_new_one_ends_it(db: Database) -> None:
    await add_symbol(db, "LTCBTC", "LTC", "BTC")
    await _pair_row(db, status="error", last_error="an old crash")
    command = await submit_command(db, "add_pair", "LTCBTC")
    states: list[BackfillState] = []
    following = asyncio.create_task(follow_backfill(db, "LTCBTC", command, 30, states.append, EVERY_S))
    await _seen_until(states, 3)
    assert not following.done()  # the command is still pending: the error is the previous run's
    await _pair_row(db, last_error="stream refused")
    await _command(db, command, status="done")
    with pytest.raises(BackfillFailed, match="LTCBTC is error: stream refused"):
        await asyncio.wait_for(following, 30)


async def test_gives_up_when_nothing_carries_the_command_out(db: Database) -> None:
    command = await submit_command(db, "add_pair", "LTCBTC")
    with pytest.raises(TimeoutError, match=r"not added yet after 0\.3 s"):
        await follow_backfill(db, "LTCBTC", command, 0.3, lambda _: None, EVERY_S)


async def _pairs_add(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "pairs",
        "add",
        *args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


async def _play_the_system(db: Database) -> None:
    """What the supervisor and the pair's actor write while they add ETHUSDT and backfill it."""
    [command] = await eventually(
        lambda: command_queue.find(db, "ETHUSDT", "pending", "add_pair", 1), "the add_pair command"
    )
    await add_symbol(db, "ETHUSDT", "ETH", "USDT")
    await _command(db, command["id"], status="done")
    for done in STEPS:
        await _pair_row(db, "ETHUSDT", status="backfilling", backfill_done=done, backfill_total=STEPS[-1])
        await asyncio.sleep(0.3)
    await _pair_row(db, "ETHUSDT", status="live")


async def test_pairs_add_wait_as_a_user_runs_it(db_url: URL, db: Database, tmp_path: Path) -> None:
    async with ReplayServer(ReplayConfig(pairs=["ETHUSDT"], history_ms=60 * MINUTE_MS)) as replay:
        env = cli_env(
            {
                "CRYPTOCAST_DATABASE_URL": db_url.set(drivername="postgresql").render_as_string(
                    hide_password=False
                ),
                "CRYPTOCAST_DATA_DIR": str(tmp_path),
                "CRYPTOCAST_REPLAY_PORT": str(replay.port),
            }
        )
        system = asyncio.create_task(_play_the_system(db))
        live = await _pairs_add(env, "ethusdt", "--wait", "--timeout", "60")
        await system
        assert live.returncode == OK, live.stderr
        assert "requested as command" in live.stderr and "ETHUSDT is live" in live.stderr
        assert live.stdout == ""
        again = await _pairs_add(env, "ETHUSDT", "--wait", "--timeout", "1")  # live, so done at once
        assert again.returncode == OK, again.stderr
        await _pair_row(db, "ETHUSDT", status="removed")
        stalled = await _pairs_add(env, "ETHUSDT", "--wait", "--timeout", "1")
        assert stalled.returncode == FAILURE, stalled.stderr
        assert "is the system running" in stalled.stderr
        for bad, said in (("ETH/USDT;", "is not a symbol"), ("NOSUCHPAIR", "does not list it")):
            refused = await _pairs_add(env, bad)
            assert refused.returncode == USAGE and said in refused.stderr, refused.stderr
