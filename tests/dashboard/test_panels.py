"""Figures and panels from API-shaped answers (the exact JSON the routes return)."""

from __future__ import annotations

from cryptocast.dashboard import figures, panels
from cryptocast.settings import EXCHANGE_URLS, ExchangeName

ORIGIN = "2025-03-01T12:00:00+00:00"
CANDLES = {"candles": [["2025-03-01T11:59:00+00:00", 100, 101, 99, 100.5, 1, 1, 1, "live"],
                       [ORIGIN, 100.5, 102, 100, 101.0, 1, 1, 1, "live"]]}  # fmt: skip


def _prediction(horizon: int, spread: float) -> dict:
    return {"origin_time": ORIGIN, "target_time": f"2025-03-01T12:{horizon:02d}:00+00:00", "horizon": horizon,
            "predicted": 101.0, "lower_80": 101 - spread, "upper_80": 101 + spread,
            "lower_95": 101 - 2 * spread, "upper_95": 101 + 2 * spread, "actual": None}  # fmt: skip


def test_forecast_path_starts_at_the_last_close_and_bands_nest() -> None:
    latest = {"origin_time": ORIGIN, "predictions": [_prediction(5, 1.0), _prediction(1, 0.5)]}
    fig = figures.price_figure("BTCUSDT", "6h", CANDLES, [_prediction(1, 0.5)], latest)
    by_name = {t.name: t for t in fig.data if t.name}
    forecast = by_name[figures.FORECAST_NAME]
    assert list(forecast.x) == ["2025-03-01 12:00:00", "2025-03-01 12:01:00", "2025-03-01 12:05:00"]
    assert forecast.y[0] == 101.0
    assert list(by_name["95 % band"].y) == [101.0, 100.0, 99.0] and list(by_name["80 % band"].y) == [
        101.0,
        100.5,
        100.0,
    ]
    assert fig.layout.uirevision == "BTCUSDT/6h" and fig.layout.xaxis.title.text == figures.UTC_AXIS
    assert "past +1 min forecast" in by_name


def test_no_forecast_still_draws_the_candles() -> None:
    fig = figures.price_figure("BTCUSDT", "1h", CANDLES, [], None)
    assert [t.type for t in fig.data] == ["candlestick"]


def test_replay_is_recognised_by_details_or_by_a_non_binance_url() -> None:
    live = EXCHANGE_URLS[ExchangeName.BINANCE][0]  # a URL string only: nothing is contacted
    assert panels.is_replay({"exchange": {"url": "http://127.0.0.1:9180/api"}})
    assert not panels.is_replay({"exchange": {"url": live}})
    described = {"exchange": {"url": live,
                              "replay": {"recordings": {"BTCUSDT": "BTCUSDT-2025-03.parquet"}, "shift": "52 weeks",
                                         "speed": 60}}}  # fmt: skip
    assert panels.is_replay(described)
    text = "".join(p if isinstance(p, str) else "" for p in panels.replay_banner(described))
    assert "BTCUSDT-2025-03.parquet" in text and "52 weeks" in text and "60×" in text


def test_progress_reads_requested_backfilling_training_live() -> None:
    row = {"status": "backfilling", "backfill": {"percent": 25.0, "eta_s": 42.0}}
    assert (
        panels.pair_progress("ETHUSDT", None, None)
        == "ETHUSDT: requested, waiting for ingestion to pick it up"
    )
    assert panels.pair_progress("ETHUSDT", row, None) == "ETHUSDT: backfilling 25.0 %, about 42 s left"
    live = {"status": "live"}
    assert panels.pair_progress("ETHUSDT", live, {"freshness": {"models": []}}).startswith(
        "ETHUSDT: training"
    )
    assert panels.pair_progress("ETHUSDT", live, {"freshness": {"models": [{}]}}) == "ETHUSDT: live"


def test_accuracy_reads_numbers_sent_as_strings() -> None:
    scores = {
        "n": 30,
        "mae": 1.5,
        "mae_persistence": 2.0,
        "skill": 0.25,
        "coverage_80": "0.8000",
        "coverage_95": "0.9667",
    }
    detail = {"live_skill": {"window_minutes": 1440, "horizons": {"5": scores}}, "last_training": None,
              "next_training": None, "freshness": {"models": []}}  # fmt: skip
    table = panels.accuracy_panel(detail)[-1]
    cells = [c.children for c in table.children[1].children[0].children]
    assert cells == ["+5 min", "30", "1.5", "2", "+0.250", "80.0 % (80 %)", "96.7 % (95 %)"]
