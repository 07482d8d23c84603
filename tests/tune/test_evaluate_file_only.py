"""``cryptocast evaluate --data FILE`` for a pair this system never served: the file alone is scored.

A user who brings a month of candles before running anything has no database and no stored model;
the served interval method, the RV30 method and plain conformal are then refitted day by day on
the file's own days, and no database is started for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cryptocast.settings import get_settings
from cryptocast.tune.cli import register
from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.models import FILE_METHODS
from tests.tune.tune_data import btc

DAYS = SERVED.span_ms / DAY_MS + 2.5  # the served method's span, then two scored days


@pytest.fixture
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CRYPTOCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CRYPTOCAST_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _evaluate(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["evaluate", "--pair", "BTCUSDT", *args])
    return result.exit_code, result.output


def test_a_file_for_a_pair_never_served_is_scored_on_its_own_days_without_a_database(
    no_database: Path,
) -> None:
    data = no_database / "BTCUSDT-2025-03.csv.gz"
    btc(DAYS).frame.to_csv(data, index=False, compression="gzip")
    report = no_database / "report.json"
    code, out = _evaluate("--data", str(data), "--report", str(report))
    assert code == 0, out
    assert "no model of BTCUSDT is stored here" in out
    scores = json.loads(report.read_text())
    assert set(scores["models"]) == set(FILE_METHODS)
    assert scores["days"] >= 1 and scores["calibration"] == "daily"
    served = scores["models"]["persistence"]["30"]  # persistence with the served intervals
    assert 0.6 < served["coverage_80"] < 0.95  # intervals were fitted and applied, not left empty
    assert not (no_database / "pg").exists()  # no database was started for a file


def test_fixed_calibration_needs_stored_models_and_says_so(no_database: Path) -> None:
    data = no_database / "BTCUSDT-2025-03.csv.gz"
    btc(DAYS).frame.to_csv(data, index=False, compression="gzip")
    code, out = _evaluate("--data", str(data), "--fixed-calibration")
    assert code == 1
    assert "--fixed-calibration scores stored models" in out and "Traceback" not in out
