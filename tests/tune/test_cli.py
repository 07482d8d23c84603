"""``cryptocast evaluate`` (JSON and PNG) and ``models list`` on a real database and a gzipped CSV the model never saw."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from cryptocast.records import MINUTE_MS
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline
from cryptocast.tune.cli import register
from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.evaluation import SAMPLE_ORIGINS
from cryptocast.tune.history import HistoryNeeds
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.training import fit, lstm_predictor, prepare
from cryptocast.tune.walkforward import MIN_CALIBRATION_SHARE
from tests.tune.tune_data import btc, load_pair

HOUR_MS = 3_600_000
CALIBRATION_DAYS = SERVED.span_ms / DAY_MS  # intervals are refitted daily on the span before the day
UNSEEN_DAYS = CALIBRATION_DAYS + 1.5  # the least evaluate takes is the span and a scored day
SMALL = LstmConfig(seq_len=10, units=8, epochs=1, batch=128, seed=3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 30_000  # three panels of markers, bands and lines; a blank figure is a few kB


async def _setup(url, store_dir) -> None:
    db = Database(url)
    store = registry.ModelStore(str(store_dir))
    sid = await load_pair(db, "BTCUSDT", btc(1.0))
    await ensure_baseline(db, store, sid)
    prepared = prepare(
        btc(1.0), SMALL, SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS)
    )
    predictor, _ = lstm_predictor(prepared, SMALL, fit(prepared, SMALL)[0])
    await registry.register(db, store, sid, predictor, registry.SHADOW, "not promoted in this test")
    await db.dispose()


@pytest.fixture
def cli_env(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYPTOCAST_DATABASE_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRYPTOCAST_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_evaluate_on_an_unseen_csv(cli_env, db_url) -> None:
    asyncio.run(_setup(db_url, get_settings().model_store))
    unseen = cli_env / "BTCUSDT-unseen.csv.gz"
    btc(UNSEEN_DAYS, offset_days=10).frame.to_csv(unseen, index=False, compression="gzip")
    app = typer.Typer()
    register(app)
    report = cli_env / "report.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--pair", "BTCUSDT", "--data", str(unseen), "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(report.read_text())
    assert scores["data"] == unseen.name and scores["days"] >= 1 and scores["calibration"] == "daily"
    first_scored = min(scores["first_origin_ms"], *scores["sample"]["origin_ms"])
    start = btc(UNSEEN_DAYS, offset_days=10).open_time[0]
    assert first_scored >= start + MIN_CALIBRATION_SHARE * SERVED.span_ms  # after a calibration span's share
    assert set(scores["models"]) == {
        "served",
        "persistence",
        "persistence_plain_conformal",
        "lstm_v2_all_horizons",
    }
    assert scores["models"]["served"]["30"]["skill"] == 0.0  # the shadow LSTM is not served
    assert 0.5 < scores["models"]["persistence"]["1"]["coverage_80"] < 1.0
    # the plot's sample is the newest forecasts against the realised close(t + h) from the file
    sample = scores["sample"]
    h = sample["horizon"]
    close = btc(UNSEEN_DAYS, offset_days=10).frame.set_index("open_time_ms")["close"]
    expected = close.reindex([t + h * MINUTE_MS for t in sample["origin_ms"]]).to_numpy()
    np.testing.assert_allclose(sample["models"]["served"]["actual"], expected, rtol=1e-12)
    assert sample["origin_ms"][-1] == scores["last_origin_ms"] and len(sample["origin_ms"]) == SAMPLE_ORIGINS
    lstm = sample["models"]["lstm_v2_all_horizons"]
    assert all(
        lo <= p <= hi for lo, p, hi in zip(lstm["lower_80"], lstm["point"], lstm["upper_80"], strict=True)
    )
    png = report.with_suffix(".png")
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > MIN_PNG_BYTES
    width, height = struct.unpack(">II", data[16:24])  # IHDR: a full-size figure, not an empty canvas
    assert width >= 800 and height >= 800
    listing = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "240"})
    assert listing.exit_code == 0 and "shadow" in listing.output and "persistence" in listing.output


def _commands_app() -> typer.Typer:
    from cryptocast.sql.cli import register as register_commands

    app = typer.Typer()
    register(app)
    register_commands(app)
    return app


def test_train_queues_a_command_and_waiting_without_a_scheduler_says_so(cli_env, db_url) -> None:
    async def setup() -> None:
        db = Database(db_url)
        await load_pair(db, "BTCUSDT", btc(0.2))
        await load_pair(db, "ETHUSDT", btc(0.2), status="backfilling")
        await db.dispose()

    asyncio.run(setup())
    app, runner = _commands_app(), CliRunner()
    queued = runner.invoke(app, ["train", "--pair", "btcusdt"])
    assert queued.exit_code == 0, queued.output
    assert "queued as command 1" in queued.output and "no training scheduler is running" in queued.output
    again = runner.invoke(app, ["train", "--pair", "BTCUSDT", "--wait", "--timeout", "30"])
    assert again.exit_code == 1  # it follows the open command, and stops waiting since nothing runs it
    assert "already pending: command 1" in again.output and "stays queued until one starts" in again.output
    assert "backfilling" in runner.invoke(app, ["train", "--pair", "ETHUSDT"]).output
    assert "not tracked" in runner.invoke(app, ["train", "--pair", "DOGEUSDT"]).output
    assert runner.invoke(app, ["train", "--pair", "BTCUSDT", "--trials", "2"]).exit_code == 2
    listed = runner.invoke(app, ["commands", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [command] = json.loads(listed.stdout)["commands"]
    assert (command["id"], command["kind"], command["status"], command["trigger"]) == (
        1,
        "retrain",
        "pending",
        "request",
    )
    shown = runner.invoke(app, ["commands", "show", "1", "--json"])
    assert json.loads(shown.stdout) == command
    assert (
        "retrain"
        in runner.invoke(app, ["commands", "list", "--pair", "BTCUSDT"], env={"COLUMNS": "200"}).output
    )
    assert runner.invoke(app, ["commands", "show", "99"]).exit_code == 1
    assert runner.invoke(app, ["commands", "list", "--status", "lost"]).exit_code == 2


LOCAL_HISTORY_DAYS = (
    HistoryNeeds().min_history_ms / DAY_MS + 0.5
)  # the least a first LSTM trains on, and some
EXIT_AFTER_OUTPUT_S = 20.0  # a head killed with its thread costs Ray's exit handler 60 s, then exit 1
LOCAL_TRAIN_TIMEOUT_S = 600


def test_train_local_exits_0_as_soon_as_it_has_printed_its_result(cli_env, db_url) -> None:
    """The sweep starts Ray in a worker thread (``asyncio.to_thread``) that ends before the process does."""

    async def setup() -> None:
        db = Database(db_url)
        await load_pair(db, "BTCUSDT", btc(LOCAL_HISTORY_DAYS))
        await db.dispose()

    asyncio.run(setup())
    command = [
        sys.executable,
        "-c",
        "from cryptocast.cli import app; app()",
        "train",
        "--pair",
        "BTCUSDT",
        "--local",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--days",
        str(int(LOCAL_HISTORY_DAYS) + 1),
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output, last_line_at = [], time.monotonic()
    for line in process.stdout:
        output.append(line)
        last_line_at = time.monotonic()
    code = process.wait(LOCAL_TRAIN_TIMEOUT_S)
    exit_after = time.monotonic() - last_line_at
    text = "".join(output)
    assert code == 0, text[-3000:]
    assert re.search(r"BTCUSDT LSTM v\d+: (champion|shadow)", text) and "sweep: " in text, text[-3000:]
    assert exit_after < EXIT_AFTER_OUTPUT_S, f"exited {exit_after:.0f} s after its last line"


# ``evaluate --data`` with the files users bring: a malformed one ends in one line naming the problem
# (before any database or model is touched), and what the reader does to a messy one is said.

ROW = 2  # the row each malformed case spoils: line 4 of the file, after the header
BAD_ROW_LINE = ROW + 2


def _spoil(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.astype(object)
        out.loc[ROW, column] = value(frame) if callable(value) else value
        return out

    return spoil


def _write_csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame, Path], Path]:
    def write(frame: pd.DataFrame, path: Path) -> Path:
        change(frame).to_csv(path, index=False)
        return path

    return write


def _write_bytes(content: Callable[[pd.DataFrame], bytes]) -> Callable[[pd.DataFrame, Path], Path]:
    def write(frame: pd.DataFrame, path: Path) -> Path:
        path.write_bytes(content(frame))
        return path

    return write


def _ragged(frame: pd.DataFrame) -> bytes:
    lines = frame.to_csv(index=False).splitlines()
    lines[ROW + 1] += ",7"
    return "\n".join(lines).encode()


def _truncated_gzip(frame: pd.DataFrame) -> bytes:
    packed = gzip.compress(frame.to_csv(index=False).encode())
    return packed[: len(packed) // 2]


def _repeat_that_differs(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[ROW]].assign(volume=frame["volume"][ROW] + 1)])


def _five_minute(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(open_time_ms=frame["open_time_ms"][0] + 5 * MINUTE_MS * np.arange(len(frame)))


MALFORMED = {
    "a missing file": (lambda frame, path: path.with_name("absent.csv"), r"absent\.csv: no such file$"),
    "a directory": (lambda frame, path: path.parent, r"is a directory, not a candle file$"),
    "an empty file": (_write_bytes(lambda frame: b""), r"the file is empty$"),
    "a picture": (
        _write_bytes(lambda frame: PNG_SIGNATURE + bytes(range(256)) * 8),
        r"not a readable CSV file",
    ),
    "a cut gzip": (_write_bytes(_truncated_gzip), r"not a readable gzipped CSV file"),
    "a ragged row": (_write_bytes(_ragged), rf"Expected 6 fields in line {BAD_ROW_LINE}, saw 7"),
    "no volume column": (
        _write_csv(lambda f: f.drop(columns="volume")),
        r"no column volume \(has open_time_ms",
    ),
    "a word for a price": (
        _write_csv(_spoil("close", "abc")),
        rf"line {BAD_ROW_LINE}: close is not a number: 'abc'$",
    ),
    "an empty cell": (_write_csv(_spoil("high", "")), rf"line {BAD_ROW_LINE}: high is empty$"),
    "a zero price": (
        _write_csv(_spoil("low", 0)),
        rf"line {BAD_ROW_LINE}: low is 0; prices must be positive$",
    ),
    "high under low": (
        _write_csv(_spoil("high", lambda f: f["low"][ROW] - 1)),
        rf"line {BAD_ROW_LINE}: high [\d.]+ is below low",
    ),
    "close over high": (
        _write_csv(_spoil("close", lambda f: f["high"][ROW] + 1)),
        rf"line {BAD_ROW_LINE}: close [\d.]+ is outside low–high",
    ),
    "negative volume": (
        _write_csv(_spoil("volume", -2)),
        rf"line {BAD_ROW_LINE}: volume is -2; it cannot be negative$",
    ),
    "off the minute": (
        _write_csv(_spoil("open_time_ms", lambda f: f["open_time_ms"][ROW] + 30_000)),
        rf"line {BAD_ROW_LINE}: open time [\d-]+ [\d:]+:30\.000 UTC is off the 1-minute grid",
    ),
    "seconds, not ms": (
        _write_csv(lambda f: f.assign(open_time_ms=f["open_time_ms"] // 1000)),
        r"line 2: open time \d+ is not a time in milliseconds since 1970",
    ),
    "a repeat that differs": (
        _write_csv(_repeat_that_differs),
        rf"is on line {BAD_ROW_LINE} and line \d+ with different values; remove the wrong copy$",
    ),
    "5-minute candles": (
        _write_csv(_five_minute),
        r"these are 5-minute candles; evaluate scores 1-minute candles$",
    ),
}


@pytest.fixture
def file_env(tmp_path, monkeypatch):
    """Settings for a command that must stop at the file, before it looks for a database."""
    monkeypatch.setenv("CRYPTOCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CRYPTOCAST_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _evaluate(path: Path, *options: str) -> Result:
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["evaluate", "--pair", "BTCUSDT", "--data", str(path), *options])


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    [line] = result.output.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_file_ends_in_one_line_that_names_the_problem(file_env, case: str) -> None:
    write, expected = MALFORMED[case]
    path = write(btc(0.02).frame.reset_index(drop=True), file_env / "BTCUSDT-user.csv")
    line = _one_error_line(_evaluate(path))
    assert re.search(expected, line), line
    assert path.name in line
    assert not (file_env / "pg").exists()  # refused before a database was started


def test_a_file_too_short_to_score_is_refused_with_its_length_and_the_minimum(file_env) -> None:
    path = file_env / "BTCUSDT-two-days.csv"
    btc(2.0).frame.to_csv(path, index=False)
    line = _one_error_line(_evaluate(path))
    assert f"holds 2.0 days; evaluate needs at least {CALIBRATION_DAYS + 1:.1f}" in line
    btc(0.5).frame.to_csv(path, index=False)
    assert "holds 0.5 days; evaluate needs at least 1.0" in _one_error_line(
        _evaluate(path, "--fixed-calibration")
    )


def test_repeats_disorder_holes_and_a_short_file_are_reported_and_scored_as_the_clean_file(
    cli_env, db_url
) -> None:
    async def setup() -> None:
        db = Database(db_url)
        sid = await load_pair(db, "BTCUSDT", btc(1.0))
        await ensure_baseline(db, registry.ModelStore(get_settings().model_store), sid)
        await db.dispose()

    asyncio.run(setup())
    frame = btc(UNSEEN_DAYS, offset_days=10).frame
    hole = range(3000, 3030)
    kept = frame.drop(frame.index[list(hole)])
    clean, messy = cli_env / "BTCUSDT-clean.csv", cli_env / "BTCUSDT-messy.csv.gz"
    kept.to_csv(clean, index=False)
    shuffled = pd.concat([kept, kept.iloc[[10, 500, 4000]]]).sample(frac=1.0, random_state=11)
    shuffled.to_csv(messy, index=False, compression="gzip")
    runs = {path: _evaluate(path, "--report", str(path.with_suffix(".json"))) for path in (clean, messy)}
    for result in runs.values():
        assert result.exit_code == 0, result.output
    out = runs[messy].output
    descents = int((np.diff(shuffled["open_time_ms"].to_numpy()) < 0).sum())
    assert (
        "data: repeated minutes: 3 rows repeated an earlier minute with identical values and were merged"
        in out
    )
    assert f"data: order: {descents:,} rows opened before the row above them; sorted by open time" in out
    assert f"data: holes: 1, {len(hole)} minutes missing, the largest {len(hole)} minutes" in out
    assert f"holds {UNSEEN_DAYS} days, under the {CALIBRATION_DAYS + 5:.0f}" in out  # calibrating + 5 scored
    reports = {path: json.loads(path.with_suffix(".json").read_text()) for path in (clean, messy)}
    scored = reports[messy]["days"]  # days from the first half-span on: enough to test, so no second warning
    assert scored >= 5 and "warning: scored" not in out, (scored, out)
    assert reports[messy]["models"] == reports[clean]["models"]
    check = reports[messy]["data_check"]
    assert (check["merged_repeats"], check["out_of_order"], check["missing_minutes"]) == (
        3,
        descents,
        len(hole),
    )
