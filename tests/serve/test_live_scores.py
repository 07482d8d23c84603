"""The bands' quant scores through the real Serve proxy: live scores of stored forecasts equal the offline
evaluation's on the same minutes, and a version's test-window scores are the ones training stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from cryptocast.records import MINUTE_MS
from cryptocast.serve.calibration import MAX_WINDOW_MINUTES, MIN_WINDOW_MINUTES
from cryptocast.tune import registry
from cryptocast.tune.conformal import LEVELS, SERVED
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.evaluation import evaluate
from cryptocast.tune.training import persistence_predictor
from tests.serve.conftest import btc, load_pair, purge_pair

pytestmark = pytest.mark.slow
SYMBOL = "SCOREUSDT"  # removed: its data stay readable and no pair application is deployed for it
WINDOW_MINUTES = 360
SCORED_DAYS = 1.0

_INSERT = """
INSERT INTO predictions (symbol_id, model_id, origin_time, horizon, predicted, lower_80, upper_80, lower_95,
                         upper_95, served)
SELECT $1, $2, to_timestamp(r.origin_ms / 1000.0), r.horizon, r.predicted, r.lower_80, r.upper_80, r.lower_95,
       r.upper_95, true
FROM jsonb_to_recordset($3::jsonb) AS r(origin_ms bigint, horizon int, predicted float8, lower_80 float8,
     upper_80 float8, lower_95 float8, upper_95 float8)
"""


def _rows(candles, predictor, since_ms: int) -> list[dict]:
    """The served forecasts of every origin from ``since_ms`` whose targets are all stored, in prices."""
    last = int(candles.open_time[-1])
    idx = np.flatnonzero(
        (candles.open_time >= since_ms) & (candles.open_time <= last - max(HORIZONS) * MINUTE_MS)
    )
    f = predictor.forecast_returns(candles, idx)
    close = candles.frame["close"].to_numpy()[idx]
    rows = []
    for j, h in enumerate(HORIZONS):
        bounds = {
            f"{side}_{round(level * 100)}": close * np.exp(f.point[:, j] + sign * f.half[level][:, j])
            for level in LEVELS
            for side, sign in (("lower", -1), ("upper", 1))
        }
        predicted = close * np.exp(f.point[:, j])
        rows += [
            {
                "origin_ms": int(candles.open_time[i]),
                "horizon": h,
                "predicted": float(predicted[k]),
                **{key: float(v[k]) for key, v in bounds.items()},
            }
            for k, i in enumerate(idx)
        ]
    return rows


@pytest.fixture(scope="module")
async def scored(served) -> AsyncIterator[dict]:
    """A pair with a calibrated persistence model's forecasts stored over its newest minutes, and the
    offline evaluation of the same forecasts on the same minutes; deleted, data and all, after this
    module's tests, so no other module sees it."""
    candles = btc(SERVED.span_ms / DAY_MS + SCORED_DAYS)
    cut = int(candles.open_time[0]) + SERVED.span_ms
    predictor, _ = persistence_predictor(candles.until(cut))
    since = int(candles.open_time[-1]) - WINDOW_MINUTES * MINUTE_MS
    report = evaluate(candles, {"persistence": predictor}, since_ms=since)
    sid = await load_pair(served.db, SYMBOL, candles, status="removed")
    record = await registry.register(
        served.db,
        served.store,
        sid,
        predictor,
        registry.RETIRED,
        "scored by a test",
        metrics={"test": report["models"]["persistence"]},
    )
    yield {
        "sid": sid,
        "model_id": record.id,
        "rows": _rows(candles, predictor, since),
        "report": report["models"]["persistence"],
    }
    await purge_pair(served.db, SYMBOL)


async def test_live_scores_of_stored_forecasts_equal_the_offline_evaluation(served, client, scored) -> None:
    path = f"/pairs/{SYMBOL}/scores"
    empty = (await client.get(path, params={"window_minutes": WINDOW_MINUTES})).json()
    assert empty["horizons"] == {} and empty["window_minutes"] == WINDOW_MINUTES
    async with served.db.raw() as conn:
        await conn.execute(_INSERT, scored["sid"], scored["model_id"], json.dumps(scored["rows"]))
    # another window: the empty answer above is reused for a few seconds
    answer = (await client.get(path, params={"window_minutes": WINDOW_MINUTES + 1})).json()
    assert set(answer["horizons"]) == {str(h) for h in HORIZONS} and answer["freshness"]["last_candle_time"]
    for h in HORIZONS:
        live, offline = answer["horizons"][str(h)], scored["report"][str(h)]
        assert live["n"] == offline["n"] and live["n_effective"] == pytest.approx(offline["n"] / h)
        assert live["wis_bps"] == pytest.approx(offline["wis_bps"], rel=1e-6)
        for level in LEVELS:
            key = f"{round(level * 100)}"
            band, backtest = live["bands"][key], offline[f"backtest_{key}"]
            assert band["nominal"] == level and band["coverage"] == pytest.approx(offline[f"coverage_{key}"])
            assert band["coverage_se"] == pytest.approx(np.sqrt(level * (1 - level) / (offline["n"] / h)))
            assert band["interval_score_bps"] == pytest.approx(offline[f"interval_score_{key}_bps"], rel=1e-6)
            assert band["width_bps"] == pytest.approx(offline[f"width_{key}_bps"], rel=1e-6)
            assert (band["backtest"]["n"], band["backtest"]["misses"]) == (backtest["n"], backtest["misses"])
            assert band["kupiec_p"] == pytest.approx(backtest["kupiec_p"])
            assert band["christoffersen_p"] == pytest.approx(backtest["christoffersen_p"])
            by_hour = offline[f"by_hour_{key}"]
            assert band["by_hour"]["n"] == by_hour["n"]
            assert band["by_hour"]["coverage"] == pytest.approx(by_hour["coverage"], nan_ok=True)
    # a shorter window scores only its own origins: the stored ones end max(HORIZONS) minutes before the newest
    short = (await client.get(path, params={"window_minutes": MIN_WINDOW_MINUTES})).json()["horizons"]["1"]
    assert short["n"] == MIN_WINDOW_MINUTES - max(HORIZONS) + 1


async def test_scores_refuse_windows_out_of_bounds_and_unknown_pairs_as_json(served, client, scored) -> None:
    path = f"/pairs/{SYMBOL}/scores"
    for window in (MIN_WINDOW_MINUTES - 1, MAX_WINDOW_MINUTES + 1, "a day"):
        reply = await client.get(path, params={"window_minutes": window})
        assert reply.status_code == 422 and reply.json()["error"] == "invalid", reply.text
        assert "window_minutes" in reply.json()["message"]
    missing = await client.get("/pairs/NOSUCHPAIR/scores")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert (await client.get("/pairs/BTC..USDT/scores")).status_code == 422


async def test_models_show_each_versions_test_window_scores(served, client, scored) -> None:
    versions = (await client.get(f"/models/{SYMBOL}")).json()["versions"]
    mine = next(v for v in versions if v["id"] == scored["model_id"])
    assert list(mine["scores"]) == [str(h) for h in HORIZONS]
    for h in HORIZONS:
        view, stored = mine["scores"][str(h)], scored["report"][str(h)]
        assert (view["n"], view["wis_bps"], view["crps_gaussian_bps"]) == (
            stored["n"],
            stored["wis_bps"],
            stored["crps_gaussian_bps"],
        )
        assert view["gate"] is None  # a version the gate never judged
        assert view["mde_vs_persistence"] == {
            k: stored["test_vs_persistence"][k]["mde"] for k in ("mae", "interval_score")
        }
        for level in LEVELS:
            key = f"{round(level * 100)}"
            band = view["bands"][key]
            assert band["interval_score_bps"] == stored[f"interval_score_{key}_bps"]
            assert band["kupiec_p"] == stored[f"backtest_{key}"]["kupiec_p"]
            assert band["by_vol_decile"] == {
                k: stored[f"by_vol_decile_{key}"][k] for k in ("coverage", "se", "n")
            }
            assert len(band["by_hour"]["coverage"]) == 24 and len(band["by_vol_decile"]["se"]) == 10
