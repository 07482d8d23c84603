"""The ``cryptocast`` command as a user runs it: a real process, real databases."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import URL

from cryptocast.exitcodes import UNREACHABLE, USAGE
from cryptocast.records import BookTop
from cryptocast.sql.database import Database
from cryptocast.sql.migrate import head_revision
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.schema import commands, models, predictions, symbols, top_of_book
from cryptocast.sql.writer import CandleWriter
from tests.helpers import CLI, cli_env, running_up, scratch_database

HEAD = head_revision()  # the newest migration: what upgrade reaches and status reports
FUTURE = timedelta(days=3650)  # a candle stamped ten years ahead (a clock or exchange gone wrong)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(  # stdin is not a terminal, as in a script: nothing can be confirmed by typing
        [*CLI, *args],
        env=cli_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _plain(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("url", "expected", "code"),
    [
        ("postgresql://nobody:pw@127.0.0.1:1/x", "connection refused", UNREACHABLE),
        ("mysql://u:p@127.0.0.1/x", "only PostgreSQL is supported", USAGE),
        ("not a url", "not a valid URL", USAGE),
    ],
)
def test_wrong_database_url_is_one_actionable_line(url: str, expected: str, code: int) -> None:
    result = run_cli("db", "status", env={"CRYPTOCAST_DATABASE_URL": url})
    assert result.returncode == code
    assert expected in result.stderr
    assert "CRYPTOCAST_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_password_is_named(server_urls: dict[str, URL]) -> None:
    if "tcp" not in server_urls:
        pytest.skip("needs the TCP server")
    bad = server_urls["tcp"].set(password="wrong-password")
    result = run_cli("db", "status", env={"CRYPTOCAST_DATABASE_URL": _plain(bad)})
    assert result.returncode == UNREACHABLE and "wrong user or password" in result.stderr


def test_db_upgrade_and_downgrade_on_a_server(blank_db_url: URL) -> None:
    env = {"CRYPTOCAST_DATABASE_URL": _plain(blank_db_url)}
    up = run_cli("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert f"schema at {HEAD}" in up.stderr
    down = run_cli("db", "downgrade", "base", "--yes", env=env)
    assert down.returncode == 0, down.stderr
    assert "schema at base" in down.stderr


async def _tables(db: Database) -> set[str]:
    async with db.connect() as conn:
        rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        return {name for (name,) in rows}


async def test_downgrade_needs_a_revision_and_yes(db_url: URL, db: Database) -> None:
    env = {"CRYPTOCAST_DATABASE_URL": _plain(db_url)}
    before = await _tables(db)
    assert {"price_history", "predictions", "alembic_version"} <= before
    no_revision = await asyncio.to_thread(run_cli, "db", "downgrade", env=env)
    assert no_revision.returncode == 2 and "Missing argument 'revision'" in no_revision.stderr
    refused = await asyncio.to_thread(run_cli, "db", "downgrade", "base", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "refusing to downgrade the schema" in refused.stderr and "--yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await _tables(db) == before
    done = await asyncio.to_thread(run_cli, "db", "downgrade", "base", "--yes", env=env)
    assert done.returncode == 0 and "schema at base" in done.stderr, done.stderr
    assert await _tables(db) == {"alembic_version"}


def test_downgrade_goes_ahead_when_yes_is_typed_at_a_terminal(blank_db_url: URL) -> None:
    env = {"CRYPTOCAST_DATABASE_URL": _plain(blank_db_url)}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    full_env = cli_env(env)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [*CLI, "db", "downgrade", "base"],
            env=full_env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, b"y\n")
        _, err = proc.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert "Go ahead?" in err and "schema at base" in err


async def _commands(db: Database) -> list[tuple[str, str]]:
    async with db.connect() as conn:
        return [tuple(row) for row in await conn.execute(select(commands.c.kind, commands.c.symbol))]


async def test_purge_needs_yes_and_plain_remove_does_not(db_url: URL, db: Database) -> None:
    env = {"CRYPTOCAST_DATABASE_URL": _plain(db_url)}
    refused = await asyncio.to_thread(run_cli, "pairs", "remove", "btcusdt", "--purge", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "refusing to purge BTCUSDT" in refused.stderr and "--yes" in refused.stderr
    assert await _commands(db) == []
    removed = await asyncio.to_thread(run_cli, "pairs", "remove", "btcusdt", env=env)
    assert removed.returncode == 0, removed.stderr
    purged = await asyncio.to_thread(run_cli, "pairs", "remove", "ethusdt", "--purge", "--yes", env=env)
    assert purged.returncode == 0, purged.stderr
    assert sorted(await _commands(db)) == [("purge_pair", "ETHUSDT"), ("remove_pair", "BTCUSDT")]


async def _seed_retention(db: Database, now: datetime) -> None:
    """A pair whose newest candle is dated years ahead, and predictions and top of book of 1, 5 and 40 days ago."""
    sid = await add_symbol(db, "ETHUSDT", "ETH", "USDT")
    ages = [timedelta(days=d) for d in (1, 5, 40)]
    await CandleWriter(db).write_book(
        sid, [BookTop(int((now - a).timestamp() * 1000), 10.0, 1.0, 10.1, 1.0) for a in ages]
    )
    async with db.begin() as conn:
        await conn.execute(update(symbols).where(symbols.c.id == sid).values(last_candle_time=now + FUTURE))
        mid = (
            await conn.execute(
                insert(models).values(symbol_id=sid, kind="persistence", version=1).returning(models.c.id)
            )
        ).scalar()
        for a in ages:
            await conn.execute(
                insert(predictions).values(
                    symbol_id=sid, model_id=mid, origin_time=now - a, horizon=1, predicted=10.0, served=True
                )
            )


async def _counts(db: Database) -> tuple[int, int]:
    async with db.connect() as conn:
        return tuple(
            [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (predictions, top_of_book)
            ]
        )


async def test_prune_keeps_recent_rows_after_a_future_dated_candle(db_url: URL, db: Database) -> None:
    await _seed_retention(db, datetime.now(UTC))
    env = {
        "CRYPTOCAST_DATABASE_URL": _plain(db_url),
        "CRYPTOCAST_RETENTION_PREDICTIONS_DAYS": "30",
        "CRYPTOCAST_RETENTION_TOP_OF_BOOK_DAYS": "3",
    }
    pruned = await asyncio.to_thread(run_cli, "db", "prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 predictions and 2 top-of-book rows" in pruned.stderr
    assert await _counts(db) == (2, 1)


async def test_prune_with_a_retention_of_zero_needs_yes(db_url: URL, db: Database) -> None:
    await _seed_retention(db, datetime.now(UTC))
    env = {"CRYPTOCAST_DATABASE_URL": _plain(db_url), "CRYPTOCAST_RETENTION_PREDICTIONS_DAYS": "0"}
    refused = await asyncio.to_thread(run_cli, "db", "prune", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "refusing to delete every row of predictions" in refused.stderr and "--yes" in refused.stderr
    assert await _counts(db) == (3, 3)
    negative = await asyncio.to_thread(
        run_cli, "db", "prune", env=env | {"CRYPTOCAST_RETENTION_TOP_OF_BOOK_DAYS": "-1"}
    )
    assert negative.returncode == 1 and "0 days or more" in negative.stderr, negative.stderr
    assert await _counts(db) == (3, 3)
    done = await asyncio.to_thread(run_cli, "db", "prune", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert await _counts(db) == (0, 3)


async def test_db_upgrade_on_tcp_server(server_urls: dict[str, URL]) -> None:
    if "tcp" not in server_urls:
        pytest.skip("needs the TCP server")
    async with scratch_database(server_urls["tcp"], "cli_tcp") as url:
        env = {"CRYPTOCAST_DATABASE_URL": _plain(url)}
        assert (await asyncio.to_thread(run_cli, "db", "upgrade", env=env)).returncode == 0
        status = await asyncio.to_thread(run_cli, "db", "status", env=env)
        assert status.returncode == 0 and f"{HEAD} (head {HEAD})" in status.stdout
        assert (await asyncio.to_thread(run_cli, "db", "downgrade", "base", "--yes", env=env)).returncode == 0


def test_prod_mode_without_secrets_refuses_to_start() -> None:
    result = run_cli("db", "status", env={"CRYPTOCAST_MODE": "prod"})
    assert result.returncode == 2
    assert "CRYPTOCAST_DATABASE_URL must point" in result.stderr


def _postgres_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"postgres.*{data_dir}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.slow
@pytest.mark.parametrize("direct", [False, True], ids=["proxy", "direct-ingress"])
def test_up_starts_the_system_and_ctrl_c_leaves_nothing_running(tmp_path: Path, direct: bool) -> None:
    settings = {
        "CRYPTOCAST_SERVE_DIRECT_INGRESS": "true" if direct else "false",
        "CRYPTOCAST_REPLAY_SPEED": "60",
        "CRYPTOCAST_TRAIN_TRIALS": "1",  # training is tested in test_up_training
        "CRYPTOCAST_TRAIN_EPOCHS": "1",
    }
    with running_up(tmp_path, settings) as up:
        output = up.output
        assert "(embedded)" in output and f"schema {HEAD}" in output, output
        assert "exchange: replay at http://127.0.0.1:" in output

        found = re.search(r"API: (http://\S+)", output)
        assert found, output
        api = found.group(1)
        assert api.startswith("http://127.0.0.1:")
        health = httpx.get(api.rstrip("/") + "/health", timeout=30)
        assert health.status_code == 200 and health.json()["database"]["ok"], health.text
        replica = re.search(r"API, direct to its replica: (http://\S+)", output)
        assert bool(replica) == direct, output
        if direct:  # the router's replica answers on a loopback port of its own, not the proxy's
            port = int(replica.group(1).rsplit(":", 1)[1])
            assert replica.group(1).startswith("http://127.0.0.1:") and port != int(
                up.env["CRYPTOCAST_API_PORT"]
            )
            listening = subprocess.run(
                ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True
            ).stdout
            assert listening and all(
                line.split()[3] == f"127.0.0.1:{port}" for line in listening.splitlines()
            )
            direct_health = httpx.get(replica.group(1) + "/health", timeout=30)
            assert direct_health.status_code == 200 and direct_health.json()["database"]["ok"]
        dashboard = re.search(r"dashboard: (http://\S+)", output)
        assert dashboard and dashboard.group(1).startswith("http://127.0.0.1:")
        assert httpx.get(dashboard.group(1), timeout=30).status_code == 200
        assert _postgres_pids(tmp_path / "var" / "pg"), "embedded server should be running"
        time.sleep(5)  # let ingestion run a little
        rest = up.interrupt()
        assert up.process.returncode == 0, rest
        assert "stopped cleanly" in rest
    assert _postgres_pids(tmp_path / "var" / "pg") == []
    replay = subprocess.run(
        ["pgrep", "-f", f"exchange replay --port {up.env['CRYPTOCAST_REPLAY_PORT']}"], capture_output=True
    )
    assert replay.stdout == b"", "the replay exchange should have stopped"
