"""Figures and panels from API-shaped answers (the exact JSON the routes return)."""

from __future__ import annotations

from dash import html

from cryptocast.dashboard import figures, panels, training
from cryptocast.settings import EXCHANGE_URLS, ExchangeName

ORIGIN = "2025-03-01T12:00:00+00:00"
CANDLES = {
    "candles": [
        ["2025-03-01T11:59:00+00:00", 100, 101, 99, 100.5, 1, 1, 1, "live"],
        [ORIGIN, 100.5, 102, 100, 101.0, 1, 1, 1, "live"],
    ]
}


def _prediction(horizon: int, spread: float) -> dict:
    return {
        "origin_time": ORIGIN,
        "target_time": f"2025-03-01T12:{horizon:02d}:00+00:00",
        "horizon": horizon,
        "predicted": 101.0,
        "lower_80": 101 - spread,
        "upper_80": 101 + spread,
        "lower_95": 101 - 2 * spread,
        "upper_95": 101 + 2 * spread,
        "actual": None,
    }


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
    described = {
        "exchange": {
            "url": live,
            "replay": {
                "recordings": {"BTCUSDT": "BTCUSDT-2025-03.parquet"},
                "shift": "52 weeks",
                "speed": 60,
            },
        }
    }
    assert panels.is_replay(described)
    line, title = panels.replay_banner(described, "2026-03-02T10:41:00+00:00")
    text = "".join(p if isinstance(p, str) else "" for p in line)
    assert "60×" in text and "clock 2026-03-02 10:41 UTC" in text and "\n" not in text
    assert "BTCUSDT-2025-03.parquet" in title and "52 weeks" in title and "speed 60×" in title
    assert "exchange clock 2026-03-02 10:41 UTC" in title


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
    detail = {
        "live_skill": {"window_minutes": 1440, "horizons": {"5": scores}},
        "last_training": None,
        "next_training": None,
        "training": _training(),
        "freshness": {"models": []},
    }
    table = panels.accuracy_panel(detail)[-1]
    cells = [c.children for c in table.children[1].children[0].children]
    assert cells == ["+5 min", "30", "1.5", "2", "+0.250", "80.0 % (80 %)", "96.7 % (95 %)"]


# --- training ---------------------------------------------------------------------------------------
SCHEDULER_UP = {
    "running": True,
    "heartbeat_at": "2025-03-01T12:00:05+00:00",
    "started_at": "2025-03-01T11:00:00+00:00",
    "message": None,
}
SCHEDULER_DOWN = {
    "running": False,
    "heartbeat_at": None,
    "started_at": None,
    "message": "no training scheduler is running: queued trainings wait until one starts "
    "(cryptocast up, or cryptocast serve apply on a cluster)",
}
GATE = [
    {
        "horizon": 1,
        "promoted": True,
        "p_vs_champion": 0.01,
        "p_vs_persistence": 0.02,
        "reason": "h=1: beats champion (p=0.01) and persistence (p=0.02)",
    },
    {
        "horizon": 15,
        "promoted": False,
        "p_vs_champion": 0.3,
        "p_vs_persistence": 0.4,
        "reason": "h=15: not better than champion and persistence at p<0.05 (p=0.3 vs champion, 0.4 vs "
        "persistence, 5 days)",
    },
]
NOT_ENOUGH = "needs 9.8 more days of history (has 0.2, a training needs at least 10.0)"


def _command(**fields: object) -> dict:
    """A command as ``GET /commands/{id}`` answers it (``command_queue.view``)."""
    return {
        "id": 7,
        "kind": "retrain",
        "symbol": "BTCUSDT",
        "status": "pending",
        "trigger": "request",
        "reason": "requested through the API",
        "created_at": "2025-03-01T12:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "seconds": None,
        "attempts": 0,
        "progress": None,
        "result": None,
        "error": None,
        "url": "/commands/7",
    } | fields


def _training(**fields: object) -> dict:
    """The ``training`` block of ``GET /pairs/{symbol}``."""
    return {
        "last": None,
        "current": None,
        "next": None,
        "history_days": None,
        "needs_days": None,
        "note": "no training while the pair is backfilling",
        "scheduler": SCHEDULER_UP,
    } | fields


def _text(component: object) -> str:
    """The text a component shows, children first to last."""
    if component is None:
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return "".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


def test_training_panel_shows_progress_the_last_result_with_its_gate_and_the_plan() -> None:
    done = _command(
        status="done",
        started_at="2025-03-01T12:09:18+00:00",
        finished_at="2025-03-01T12:10:00+00:00",
        seconds=42.0,
        attempts=1,
        result={
            "lstm": {"version": 3, "status": "champion", "served_horizons": [1, 5]},
            "baseline": {"version": 4},
            "gate": GATE,
            "val_skill": 0.0123,
        },
    )
    progress = {
        "phase": "sweep",
        "trial": 2,
        "trials": 8,
        "best_val_skill": 0.0123,
        "elapsed_s": 45.0,
        "eta_s": 120.0,
    }
    running = _command(id=8, status="running", started_at="2025-03-01T12:11:00+00:00", progress=progress)
    plan = _training(
        last=done,
        current=running,
        next={"at": "2025-03-02T02:00:00+00:00", "kind": "retrain"},
        history_days=12.5,
        note=None,
    )
    lines = [_text(line) for line in training.training_panel(plan)]
    assert lines == [
        "Training scheduler running (heartbeat 12:00:05 UTC).",
        "Now: Retrain of BTCUSDT, command 8: running — sweep, trial 2/8, best val skill +0.0123, 45 s, "
        "about 120 s left",
        "Last: finished 2025-03-01 12:10 UTC · Retrain of BTCUSDT, command 7: done after 42 s — LSTM v3: serves h=1,5",
        GATE[0]["reason"] + GATE[1]["reason"],
        "Next: retrain at 2025-03-02 02:00 UTC",
        "History: 12.50 days; enough for a training.",
    ]


def test_training_panel_says_what_history_is_missing_and_that_nothing_runs_the_queue() -> None:
    failed = _command(
        status="failed",
        started_at="2025-03-01T12:00:01+00:00",
        finished_at="2025-03-01T12:00:01.100000+00:00",
        seconds=0.1,
        attempts=1,
        error=NOT_ENOUGH,
    )
    note = "needs 9.8 more days of history for a first LSTM (minimum 10 days)"
    panel = training.training_panel(
        _training(last=failed, history_days=0.21, needs_days=9.79, note=note, scheduler=SCHEDULER_DOWN)
    )
    assert isinstance(panel[0], html.P) and panel[0].className == "message"
    assert [_text(line) for line in panel] == [
        SCHEDULER_DOWN["message"],
        f"Last: finished 2025-03-01 12:00 UTC · Retrain of BTCUSDT, command 7: failed after 0.1 s — {NOT_ENOUGH}",
        "Next: nothing planned.",
        f"History: 0.21 days; {note}.",
    ]
    assert _text(training.training_panel(_training())[1:]) == (
        "Last: no training yet.Next: nothing planned.History: no training while the pair is backfilling."
    )


def test_a_command_reads_queued_running_then_its_outcome() -> None:
    assert training.command_status(_command()) == "Retrain of BTCUSDT, command 7: queued"
    interrupted = "interrupted: the training scheduler stopped; attempt 1 of 2, queued again"
    assert training.command_status(_command(error=interrupted)).endswith(f"queued ({interrupted})")
    assert training.command_status(_command(status="running")).endswith("running — starting")
    recalibrated = _command(
        kind="recalibrate", status="done", seconds=3.25, result={"baseline": {"version": 5}}
    )
    assert training.command_status(recalibrated) == (
        "Recalibrate of BTCUSDT, command 7: done after 3.2 s — recalibrated: persistence v5"
    )
    assert training.command_status(_command(status="failed", seconds=150.0, error=NOT_ENOUGH)).endswith(
        f"failed after 2.5 min — {NOT_ENOUGH}"
    )
    never_ran = _command(status="failed", error="interrupted: the training scheduler stopped; attempt 2 of 2")
    assert (
        training.command_status(never_ran) == f"Retrain of BTCUSDT, command 7: failed — {never_ran['error']}"
    )
    accepted = _command() | {"command_id": 7, "scheduler": SCHEDULER_DOWN}
    assert (
        training.retrain_accepted(accepted)
        == f"Retrain of BTCUSDT, command 7: queued — {SCHEDULER_DOWN['message']}"
    )
    assert (
        training.retrain_accepted(accepted | {"scheduler": SCHEDULER_UP})
        == "Retrain of BTCUSDT, command 7: queued"
    )


def _version(kind: str, version: int, status: str, **fields: object) -> dict:
    """One entry of ``GET /models/{symbol}``'s ``versions``."""
    return {
        "id": version,
        "kind": kind,
        "version": version,
        "status": status,
        "reason": None,
        "trained_at": "2025-03-01T12:10:00+00:00",
        "data_start": None,
        "data_end": None,
        "served_horizons": [],
        "artifact": True,
        "hyperparameters": {},
        "metrics": {},
        "live": [],
    } | fields


def _score(horizon: int, served: bool, n: int, skill: float, coverage_80: float, coverage_95: float) -> dict:
    return {
        "model_id": 3,
        "kind": "lstm",
        "version": 3,
        "served": served,
        "horizon": horizon,
        "n": n,
        "mae": 1.0,
        "mae_persistence": 1.1,
        "skill": skill,
        "coverage_80": coverage_80,
        "coverage_95": coverage_95,
    }


def test_models_table_lists_each_version_with_its_gate_and_live_scores() -> None:
    gate = [
        {"horizon": 1, "promote": True, "p_vs_champion": 0.01, "p_vs_persistence": 0.02, "reason": "…"},
        {"horizon": 15, "promote": False, "p_vs_champion": 0.3, "p_vs_persistence": 0.4, "reason": "…"},
    ]
    lstm = _version(
        "lstm",
        3,
        "champion",
        reason="h=1: beats champion",
        served_horizons=[1],
        metrics={
            "val_skill": 0.0123,
            "gate": gate,
            "test": {"15": {"skill": -0.01}, "1": {"skill": 0.05}},
            "test_window": {"start": "2025-02-24T00:00:00+00:00", "days": 5},
        },
        live=[_score(15, False, 30, -0.02, 0.8, 0.95), _score(1, True, 40, 0.05, 0.775, 0.95)],
    )
    floor = _version(
        "persistence",
        4,
        "champion",
        reason="recalibrated with the daily retrain",
        metrics={"test": {"1": {"skill": 0.0}}},
    )
    retired = _version("persistence", 1, "retired", trained_at="2025-02-28T09:00:00+00:00")
    table = training.models_table({"symbol": "BTCUSDT", "versions": [lstm, floor, retired]})
    assert table.id == "models-table"
    assert [_text(th) for th in table.children[0].children.children] == training.MODELS_HEADER
    rows = [[c.children for c in tr.children] for tr in table.children[1].children]
    assert [_text(c) for c in rows[0][:8]] == [
        "lstm",
        "v3",
        "champion",
        "+1",
        "2025-03-01 12:10 UTC",
        "+0.012",
        "+1: +0.050 +15: -0.010",
        "+1 ✓ +15 ✗",
    ]
    assert rows[0][2].title == "h=1: beats champion"
    assert [_text(line) for line in rows[0][8]] == [
        "+1: 40, +0.050, 78/95 %",
        "+15: 30, -0.020, 80/95 % shadow",
    ]
    assert [_text(c) for c in rows[1]] == [
        "persistence",
        "v4",
        "champion",
        "floor (the rest)",
        "2025-03-01 12:10 UTC",
        "—",
        "+1: +0.000",
        "—",
        "—",
        "—",
    ]
    assert [_text(c) for c in rows[2][:4]] == ["persistence", "v1", "retired", "—"]
    assert _text(training.models_table({"symbol": "ETHUSDT", "versions": []})) == "ETHUSDT: no model yet."
