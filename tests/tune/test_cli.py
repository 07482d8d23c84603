"""``cryptocast evaluate`` and ``models list`` on a real database and a gzipped CSV the model never saw."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from tune_data import btc, load_pair
from typer.testing import CliRunner

from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.cli import register
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.pipeline import ensure_baseline
from cryptocast.tune.training import fit, lstm_predictor, prepare

HOUR_MS = 3_600_000
SMALL = LstmConfig(seq_len=10, units=8, epochs=1, batch=128, seed=3)


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
    btc(1.0, offset_days=10).frame.to_csv(unseen, index=False, compression="gzip")
    app = typer.Typer()
    register(app)
    report = cli_env / "report.json"
    result = CliRunner().invoke(app, ["evaluate", "--pair", "BTCUSDT", "--data", str(unseen), "--report", str(report)])
    assert result.exit_code == 0, result.output
    scores = json.loads(report.read_text())
    assert scores["data"] == unseen.name and scores["days"] >= 1
    assert set(scores["models"]) == {"served", "persistence", "persistence_plain_conformal", "lstm_v2_all_horizons"}
    assert scores["models"]["served"]["30"]["skill"] == 0.0  # the shadow LSTM is not served
    assert 0.5 < scores["models"]["persistence"]["1"]["coverage_80"] < 1.0
    listing = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "240"})
    assert listing.exit_code == 0 and "shadow" in listing.output and "persistence" in listing.output
