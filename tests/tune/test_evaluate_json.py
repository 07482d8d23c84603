"""``cryptocast evaluate --json``: the summary a script reads, alone on stdout, matching the report file.

The full report (per-day series, per-group coverage, the plotted sample) goes to the JSON file; stdout
carries the run and every model's scores per horizon, so a pipeline can gate on a number without
parsing tables or opening the file.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.models import FILE_METHODS
from tests.helpers import CLI, cli_env
from tests.tune.tune_data import btc

DAYS = SERVED.span_ms / DAY_MS + 1.5  # the served method's span, then a scored day


def test_evaluate_json_is_the_reports_scores_without_series(tmp_path: Path) -> None:
    data = tmp_path / "BTCUSDT-2025-03.csv.gz"
    btc(DAYS).frame.to_csv(data, index=False, compression="gzip")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [*CLI, "evaluate", "--pair", "btcusdt", "--data", str(data), "--report", str(report), "--json"],
        env=cli_env({"CRYPTOCAST_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "20"}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    full = json.loads(report.read_text())
    assert (summary["pair"], summary["data"], summary["calibration"]) == ("BTCUSDT", data.name, "daily")
    assert (summary["origins"], summary["days"]) == (full["origins"], full["days"])
    assert datetime.fromisoformat(summary["first_origin"]).timestamp() * 1000 == full["first_origin_ms"]
    assert Path(summary["report"]) == report.resolve() and Path(summary["plot"]).is_file()
    assert set(summary["models"]) == set(FILE_METHODS)
    for name, per_horizon in full["models"].items():
        for h, scores in per_horizon.items():
            shown = summary["models"][name][h]
            assert shown["skill"] == scores["skill"] and shown["coverage_80"] == scores["coverage_80"]
            assert shown["backtest_80"]["kupiec_p"] == scores["backtest_80"]["kupiec_p"]
            assert "daily_interval_score" in scores and "daily_interval_score" not in shown
    assert "no model of BTCUSDT is stored here" in result.stderr  # messages stay on stderr
