"""The bands' calibration on the page: live scores (table, reliability and coverage by hour) and each
version's test-window scores in the models table, from answers the API's own code makes, then in
headless Chromium against the whole system."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import Page, expect

from cryptocast.dashboard import figures, panels, training
from cryptocast.records import MINUTE_MS
from cryptocast.serve.calibration import score_horizon, training_view
from cryptocast.tune.conformal import LEVELS, SERVED
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.evaluation import HOUR_MS, evaluate, json_safe
from cryptocast.tune.training import persistence_predictor
from tests.dashboard.system import FIRST_PAIR, System
from tests.dashboard.test_panels import _text, _version

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tune"))
from tests.tune.tune_data import btc

WAIT_MS = 60_000
SCORED_DAYS = 1.0
# The calibration chart's traces as Plotly holds them in the page: (name, number of points).
CALIBRATION_TRACES_JS = """() => {
  const g = document.querySelector('#calibration-chart .js-plotly-plot');
  return g && g.data ? g.data.map(t => [t.name || '', (t.x || []).length]) : [];
}"""


@pytest.fixture(scope="module")
def scored() -> dict:
    """A calibrated persistence model's forecasts over a day it never saw: per horizon the columns the
    scores route reads, and the offline evaluation of the same origins."""
    candles = btc(SERVED.span_ms / DAY_MS + SCORED_DAYS)
    cut = int(candles.open_time[0]) + SERVED.span_ms
    predictor, _ = persistence_predictor(candles.until(cut))
    close = candles.frame["close"].to_numpy()
    idx = np.flatnonzero(
        (candles.open_time >= cut) & (candles.open_time < candles.open_time[-1] - max(HORIZONS) * MINUTE_MS)
    )
    f = predictor.forecast_returns(candles, idx)
    rows = {}
    for j, h in enumerate(HORIZONS):
        columns = {
            "origin_ms": candles.open_time[idx],
            "origin_close": close[idx],
            "actual": close[idx + h],
            "predicted": close[idx] * np.exp(f.point[:, j]),
        }
        for level in LEVELS:
            key = round(level * 100)
            columns[f"lower_{key}"] = close[idx] * np.exp(f.point[:, j] - f.half[level][:, j])
            columns[f"upper_{key}"] = close[idx] * np.exp(f.point[:, j] + f.half[level][:, j])
        rows[h] = columns
    report = evaluate(candles, {"persistence": predictor}, since_ms=cut)
    live = {
        "symbol": FIRST_PAIR,
        "window_minutes": 1440,
        "horizons": {str(h): json_safe(score_horizon(h, rows[h])) for h in HORIZONS},
    }
    return {"rows": rows, "live": live, "report": report["models"]["persistence"]}


def test_the_calibration_table_shows_coverage_against_nominal_with_its_error_and_kupiec(scored: dict) -> None:
    live = scored["live"]
    panel = panels.calibration_panel(live)
    table = panel[-1]
    assert table.id == "calibration-table"
    assert [_text(th) for th in table.children[0].children.children] == panels.CALIBRATION_HEADER
    rows = [[_text(c) for c in tr.children] for tr in table.children[1].children]
    assert [r[0] for r in rows] == [f"+{h} min" for h in HORIZONS]
    for row, h in zip(rows, HORIZONS, strict=True):
        band = live["horizons"][str(h)]["bands"]["80"]
        inside = np.mean(
            (scored["rows"][h]["lower_80"] <= scored["rows"][h]["actual"])
            & (scored["rows"][h]["actual"] <= scored["rows"][h]["upper_80"])
        )
        se = np.sqrt(0.8 * 0.2 / (len(scored["rows"][h]["actual"]) / h))
        assert row[2] == f"{100 * inside:.1f} ± {100 * se:.1f} % (80 %)"
        assert row[4] == f"{band['kupiec_p']:.3f}"
    assert _text(panels.calibration_panel(live | {"horizons": {}})[-1]) == "No scored predictions yet."


def test_reliability_and_coverage_by_hour_pool_every_horizon(scored: dict) -> None:
    fig = figures.calibration_figure(FIRST_PAIR, scored["live"])
    by_name = {t.name: t for t in fig.data if t.name}
    reliability = by_name["80 % band"]
    assert list(reliability.customdata) == [0.8] * len(HORIZONS) and list(reliability.text) == [
        f"+{h}" for h in HORIZONS
    ]
    assert np.allclose(reliability.x, 0.8, atol=0.02) and list(reliability.x) == sorted(reliability.x)
    for y, h in zip(reliability.y, HORIZONS, strict=True):
        assert y == scored["live"]["horizons"][str(h)]["bands"]["80"]["coverage"]
    # the hourly line is every horizon's forecasts of that hour together
    hits, counts = np.zeros(24), np.zeros(24)
    for rows in scored["rows"].values():
        hour = (rows["origin_ms"] // HOUR_MS) % 24
        inside = (rows["lower_95"] <= rows["actual"]) & (rows["actual"] <= rows["upper_95"])
        hits += np.bincount(hour, weights=inside, minlength=24)
        counts += np.bincount(hour, minlength=24)
    assert list(by_name["95 % by hour"].x) == list(range(24))
    assert np.allclose(np.array(by_name["95 % by hour"].y, dtype=float), hits / counts)
    empty = figures.calibration_figure(FIRST_PAIR, scored["live"] | {"horizons": {}})
    assert "no scored forecasts in the last 1440 minutes" in empty.layout.annotations[0].text


def test_the_models_table_shows_each_versions_test_window_bands(scored: dict) -> None:
    tested = _version(
        "persistence",
        4,
        "champion",
        metrics={"test": scored["report"]},
        scores=training_view({"test": scored["report"]}),
    )
    untested = _version("persistence", 1, "retired", scores={})
    table = training.models_table({"symbol": FIRST_PAIR, "versions": [tested, untested]})
    assert _text(table.children[0].children.children[-1]) == training.MODELS_HEADER[-1]
    first, second = ([c.children for c in tr.children] for tr in table.children[1].children)
    lines = first[-1]
    for line, h in zip(lines, HORIZONS, strict=True):
        s = scored["report"][str(h)]
        assert _text(line) == (
            f"+{h}: {100 * s['coverage_80']:.1f}/{100 * s['coverage_95']:.1f} %, "
            f"{s['interval_score_80_bps']:.1f}/{s['interval_score_95_bps']:.1f}"
        )
        worst = min(c for c in s["by_vol_decile_80"]["coverage"] if c is not None)
        assert (
            f"worst volatility decile {s['by_vol_decile_80']['coverage'].index(worst)}: {100 * worst:.1f} %"
            in line.title
        )
    assert _text(second[-1]) == "—"


@pytest.mark.slow
async def test_the_page_shows_the_served_bands_live_calibration(system: System, page: Page) -> None:
    await page.goto(system.dashboard_url)
    table = page.locator("#calibration-table")
    await expect(table).to_contain_text("+1 min", timeout=WAIT_MS)
    await expect(table).to_contain_text("% (80 %)")
    await expect(page.locator("#calibration")).to_contain_text("Served bands over the last 1440 minutes")
    await page.wait_for_function(
        f"() => ({CALIBRATION_TRACES_JS})().some(([name, n]) => name === '80 % by hour' && n === 24)",
        timeout=WAIT_MS,
    )
    traces = dict(await page.evaluate(CALIBRATION_TRACES_JS))
    assert traces["80 % band"] >= 1 and traces["95 % band"] >= 1 and traces["95 % by hour"] == 24, traces
    await expect(page.locator("#calibration-chart")).to_contain_text("coverage by UTC hour")
    await expect(page.locator("#models-table")).to_contain_text("test bands")
