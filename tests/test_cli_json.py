"""``--json`` and the exit statuses, as a script sees them: a real process, a real database.

A script pipes ``cryptocast check --json`` into ``jq`` and branches on the exit status, so stdout
must hold one JSON document and nothing else, whatever the terminal's width, and each status must
mean the same in every command.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, update
from sqlalchemy.engine import URL

from cryptocast.exitcodes import FAILURE, OK, UNREACHABLE, USAGE
from cryptocast.records import MINUTE_MS, Candle
from cryptocast.sql.database import Database
from cryptocast.sql.ledger import Span, record_holes
from cryptocast.sql.migrate import head_revision
from cryptocast.sql.queries import add_symbol, submit_command
from cryptocast.sql.schema import models, symbols
from cryptocast.sql.writer import CandleWriter
from tests.helpers import CLI, cli_env, free_port

START_MS = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
MINUTES = 120
HOLE = range(10, 13)  # 3 minutes the exchange has no candle for
LOST = range(50, 55)  # 5 minutes we failed to store


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(url: URL, **more: str) -> dict[str, str]:
    return {
        "CRYPTOCAST_DATABASE_URL": url.set(drivername="postgresql").render_as_string(hide_password=False)
    } | more


def _document(result: subprocess.CompletedProcess) -> dict:
    """stdout parsed as the one JSON document it must be."""
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def _candles(minutes: list[int]) -> list[Candle]:
    return [
        Candle(
            START_MS + m * MINUTE_MS,
            100.0,
            101.0,
            99.0,
            100.5,
            2.0,
            START_MS + (m + 1) * MINUTE_MS - 1,
            201.0,
            7,
            1.0,
            100.0,
        )
        for m in minutes
    ]


async def _seed(db: Database) -> dict[str, int]:
    """BTCUSDT with an exchange hole and ingestion gap; ETHUSDT whole; LTCBTC added, nothing stored."""
    ids = {
        "BTCUSDT": await add_symbol(db, "BTCUSDT", "BTC", "USDT"),
        "ETHUSDT": await add_symbol(db, "ETHUSDT", "ETH", "USDT"),
        "LTCBTC": await add_symbol(db, "LTCBTC", "LTC", "BTC"),
    }
    writer = CandleWriter(db)
    await writer.write(
        ids["BTCUSDT"], _candles([m for m in range(MINUTES) if m not in HOLE and m not in LOST])
    )
    await writer.write(ids["ETHUSDT"], _candles(list(range(MINUTES))))
    hole = Span(START_MS + HOLE[0] * MINUTE_MS, START_MS + HOLE[-1] * MINUTE_MS)
    await record_holes(db, ids["BTCUSDT"], [hole])
    return ids


async def test_check_json_counts_stored_rows_and_exits_1_on_missing_minutes(
    db_url: URL, db: Database
) -> None:
    await _seed(db)
    result = await asyncio.to_thread(run_cli, "check", "--json", env=_env(db_url, COLUMNS="20"))
    assert result.returncode == FAILURE, result.stderr
    report = _document(result)
    assert report["ok"] is False
    btc, eth = report["pairs"]  # by name; LTCBTC has no candle to count
    first, last = (
        datetime.fromtimestamp(START_MS / 1000, UTC),
        datetime.fromtimestamp((START_MS + (MINUTES - 1) * MINUTE_MS) / 1000, UTC),
    )
    assert btc == {
        "symbol": "BTCUSDT",
        "first": first.isoformat(),
        "last": last.isoformat(),
        "expected": MINUTES,
        "stored": MINUTES - len(HOLE) - len(LOST),
        "exchange_holes": len(HOLE),
        "missing": len(LOST),
        "duplicates": 0,
        "percent": pytest.approx(100 * (MINUTES - len(HOLE) - len(LOST)) / (MINUTES - len(HOLE))),
    }
    assert (eth["symbol"], eth["stored"], eth["missing"], eth["percent"]) == ("ETHUSDT", MINUTES, 0, 100.0)
    assert datetime.fromisoformat(btc["first"]).utcoffset().total_seconds() == 0
    wide = await asyncio.to_thread(run_cli, "check", "--json", env=_env(db_url, COLUMNS="250"))
    assert wide.stdout == result.stdout  # a narrow terminal truncates nothing


async def test_check_json_on_whole_data_is_ok_and_exits_0(db_url: URL, db: Database) -> None:
    sid = await add_symbol(db, "ETHUSDT", "ETH", "USDT")
    await CandleWriter(db).write(sid, _candles(list(range(MINUTES))))
    result = await asyncio.to_thread(run_cli, "check", "--json", env=_env(db_url))
    assert result.returncode == OK, result.stderr
    assert _document(result) | {"pairs": None} == {"ok": True, "pairs": None}


async def test_pairs_list_json(db_url: URL, db: Database) -> None:
    ids = await _seed(db)
    async with db.begin() as conn:
        await conn.execute(
            update(symbols)
            .where(symbols.c.id == ids["LTCBTC"])
            .values(
                status="backfilling", backfill_done=250, backfill_total=1000, restarts=2, last_error="x" * 300
            )
        )
    result = await asyncio.to_thread(run_cli, "pairs", "list", "--json", env=_env(db_url, COLUMNS="30"))
    assert result.returncode == OK, result.stderr
    pairs = {p["symbol"]: p for p in _document(result)["pairs"]}
    assert set(pairs) == set(ids)
    ltc = pairs["LTCBTC"]
    assert (ltc["status"], ltc["base_asset"], ltc["quote_asset"], ltc["restarts"]) == (
        "backfilling",
        "LTC",
        "BTC",
        2,
    )
    assert ltc["backfill"] == {"done": 250, "total": 1000, "percent": 25.0, "eta_s": None}
    assert ltc["last_error"] == "x" * 300  # whole, where the table cuts it
    assert pairs["BTCUSDT"]["last_candle_time"] is None or datetime.fromisoformat(
        pairs["BTCUSDT"]["last_candle_time"]
    )


async def test_models_and_commands_list_json(db_url: URL, db: Database) -> None:
    ids = await _seed(db)
    trained = datetime(2026, 3, 2, 4, 5, tzinfo=UTC)
    async with db.begin() as conn:
        await conn.execute(
            insert(models).values(
                symbol_id=ids["ETHUSDT"],
                kind="lstm",
                version=3,
                status="shadow",
                status_reason="no skill at any horizon",
                trained_at=trained,
                metrics={"served_horizons": [5, 15]},
            )
        )
    command = await submit_command(db, "add_pair", "BTCUSDT")
    listed = await asyncio.to_thread(run_cli, "models", "list", "--json", env=_env(db_url))
    assert listed.returncode == OK, listed.stderr
    [model] = _document(listed)["models"]
    assert {
        k: model[k] for k in ("symbol", "version", "kind", "status", "status_reason", "served_horizons")
    } == {
        "symbol": "ETHUSDT",
        "version": 3,
        "kind": "lstm",
        "status": "shadow",
        "status_reason": "no skill at any horizon",
        "served_horizons": [5, 15],
    }
    assert datetime.fromisoformat(model["trained_at"]) == trained
    only_btc = await asyncio.to_thread(
        run_cli, "models", "list", "--pair", "btcusdt", "--json", env=_env(db_url)
    )
    assert _document(only_btc) == {"models": []}
    commands = await asyncio.to_thread(run_cli, "commands", "list", "--json", env=_env(db_url))
    assert commands.returncode == OK, commands.stderr
    [row] = _document(commands)["commands"]
    assert (row["id"], row["kind"], row["symbol"], row["status"]) == (
        command,
        "add_pair",
        "BTCUSDT",
        "pending",
    )


async def test_db_status_json_counts_rows(db_url: URL, db: Database) -> None:
    await _seed(db)
    await submit_command(db, "add_pair", "BTCUSDT")
    result = await asyncio.to_thread(run_cli, "db", "status", "--json", env=_env(db_url))
    assert result.returncode == OK, result.stderr
    status = _document(result)
    assert (status["revision"], status["head"], status["up_to_date"]) == (
        head_revision(),
        head_revision(),
        True,
    )
    assert status["database"].endswith(f"/{db_url.database}") and status["server"]
    assert status["rows"] == {
        "symbols": 3,
        "price_history": 2 * MINUTES - len(HOLE) - len(LOST),
        "top_of_book": 0,
        "models": 0,
        "predictions": 0,
        "commands": 1,
    }


@pytest.mark.parametrize("pair", ["DOGEUSDT", "BTC/USDT;"], ids=["unknown", "malformed"])
async def test_a_bad_pair_name_is_a_usage_error(db_url: URL, db: Database, pair: str) -> None:
    await _seed(db)
    result = await asyncio.to_thread(run_cli, "models", "list", "--pair", pair, "--json", env=_env(db_url))
    assert result.returncode == USAGE, result.stderr
    assert result.stdout == ""
    assert ("unknown pair DOGEUSDT" if pair == "DOGEUSDT" else "is not a symbol") in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_exits_3_and_a_malformed_url_2() -> None:
    down = run_cli(
        "check", "--json", env={"CRYPTOCAST_DATABASE_URL": f"postgresql://u:p@127.0.0.1:{free_port()}/x"}
    )
    assert down.returncode == UNREACHABLE, down.stderr
    assert down.stdout == "" and "connection refused" in down.stderr
    malformed = run_cli("db", "status", "--json", env={"CRYPTOCAST_DATABASE_URL": "mysql://u:p@127.0.0.1/x"})
    assert malformed.returncode == USAGE and "only PostgreSQL is supported" in malformed.stderr


def test_an_unreachable_exchange_exits_3(db_url: URL) -> None:
    result = run_cli("pairs", "add", "BTCUSDT", env=_env(db_url, CRYPTOCAST_REPLAY_PORT=str(free_port())))
    assert result.returncode == UNREACHABLE, result.stderr
    assert "cannot reach the exchange" in result.stderr


async def test_check_draws_a_bar_on_a_terminal_and_none_with_json(db_url: URL, db: Database) -> None:
    await _seed(db)

    def on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess, str]:
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*CLI, "check", *args],
                env=cli_env(_env(db_url, TERM="xterm-256color", COLUMNS="200")),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=terminal,
                text=True,
            )
            os.close(terminal)
            drawn = b""
            while True:
                try:
                    chunk = os.read(controller, 65536)
                except OSError:  # the process closed its end
                    break
                if not chunk:
                    break
                drawn += chunk
            out, _ = proc.communicate(timeout=120)
        finally:
            os.close(controller)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), drawn.decode(
            errors="replace"
        )

    table, bar = await asyncio.to_thread(on_a_terminal)
    assert table.returncode == FAILURE and "BTCUSDT" in table.stdout
    assert "checking pairs" in bar
    document, nothing = await asyncio.to_thread(on_a_terminal, "--json")
    assert document.returncode == FAILURE and len(_document(document)["pairs"]) == 2
    assert "checking pairs" not in nothing


async def test_train_json_prints_the_queued_command(db_url: URL, db: Database) -> None:
    ids = await _seed(db)
    async with db.begin() as conn:
        await conn.execute(update(symbols).where(symbols.c.id == ids["BTCUSDT"]).values(status="live"))
    queued = await asyncio.to_thread(run_cli, "train", "--pair", "btcusdt", "--json", env=_env(db_url))
    assert queued.returncode == OK, queued.stderr
    command = _document(queued)
    assert (command["kind"], command["symbol"], command["status"], command["trigger"]) == (
        "retrain",
        "BTCUSDT",
        "pending",
        "request",
    )
    waited = await asyncio.to_thread(
        run_cli, "train", "--pair", "BTCUSDT", "--wait", "--timeout", "20", "--json", env=_env(db_url)
    )
    assert waited.returncode == FAILURE, waited.stderr  # no training scheduler runs on this database
    assert _document(waited) == command  # the same open command, still pending
    untracked = await asyncio.to_thread(run_cli, "train", "--pair", "DOGEUSDT", "--json", env=_env(db_url))
    assert untracked.returncode == USAGE and untracked.stdout == "", untracked.stderr
