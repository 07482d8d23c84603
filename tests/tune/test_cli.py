"""``cryptocast evaluate`` (JSON and PNG) and ``models list`` on a real database and a gzipped CSV the model never saw."""

from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest
import typer
from tune_data import btc, load_pair
from typer.testing import CliRunner

from cryptocast.records import MINUTE_MS
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.cli import register
from cryptocast.tune.dataset import DAY_MS, SplitSpans
from cryptocast.tune.evaluation import SAMPLE_ORIGINS
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.pipeline import ensure_baseline
from cryptocast.tune.training import fit, lstm_predictor, prepare

HOUR_MS = 3_600_000
UNSEEN_DAYS = 3.5  # intervals are recalibrated daily on the 2 days before, so 2 days go to calibration
SMALL = LstmConfig(seq_len=10, units=8, epochs=1, batch=128, seed=3)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 30_000  # three panels of markers, bands and lines; a blank figure is a few kB


async def _setup(url, store_dir) -> None:  # noqa: ANN001
    db = Database(url)
    store = registry.ModelStore(str(store_dir))
    sid = await load_pair(db, "BTCUSDT", btc(1.0))
    await ensure_baseline(db, store, sid)
    prepared = prepare(btc(1.0), SMALL, SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS))
    predictor, _ = lstm_predictor(prepared, SMALL, fit(prepared, SMALL)[0])
    await registry.register(db, store, sid, predictor, registry.SHADOW, "not promoted in this test")
    await db.dispose()


@pytest.fixture
def cli_env(db_url, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    monkeypatch.setenv("CRYPTOCAST_DATABASE_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRYPTOCAST_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_evaluate_on_an_unseen_csv(cli_env, db_url) -> None:  # noqa: ANN001
    asyncio.run(_setup(db_url, get_settings().model_store))
    unseen = cli_env / "BTCUSDT-unseen.csv.gz"
    btc(UNSEEN_DAYS, offset_days=10).frame.to_csv(unseen, index=False, compression="gzip")
    app = typer.Typer()
    register(app)
    report = cli_env / "report.json"
    result = CliRunner().invoke(app, ["evaluate", "--pair", "BTCUSDT", "--data", str(unseen), "--report", str(report)])
    assert result.exit_code == 0, result.output
    scores = json.loads(report.read_text())
    assert scores["data"] == unseen.name and scores["days"] >= 1 and scores["calibration"] == "daily"
    first_scored = min(scores["first_origin_ms"], *scores["sample"]["origin_ms"])
    assert first_scored >= (btc(UNSEEN_DAYS, offset_days=10).open_time[0] // DAY_MS + 2) * DAY_MS  # after 2 calibration days
    assert set(scores["models"]) == {"served", "persistence", "persistence_plain_conformal", "lstm_v2_all_horizons"}
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
    assert all(lo <= p <= hi for lo, p, hi in zip(lstm["lower_80"], lstm["point"], lstm["upper_80"], strict=True))
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


def test_train_queues_a_command_and_waiting_without_a_scheduler_says_so(cli_env, db_url) -> None:  # noqa: ANN001
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
    assert (command["id"], command["kind"], command["status"], command["trigger"]) == (1, "retrain", "pending", "request")
    shown = runner.invoke(app, ["commands", "show", "1", "--json"])
    assert json.loads(shown.stdout) == command
    assert "retrain" in runner.invoke(app, ["commands", "list", "--pair", "BTCUSDT"], env={"COLUMNS": "200"}).output
    assert runner.invoke(app, ["commands", "show", "99"]).exit_code == 1
    assert runner.invoke(app, ["commands", "list", "--status", "lost"]).exit_code == 2
