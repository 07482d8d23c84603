"""The page's view of training: a pair's training panel, its model versions, a command's status line.

Everything is read from the API (the ``training`` block of ``GET /pairs/{symbol}``,
``GET /models/{symbol}``, ``GET /commands/{id}``) and nothing is worked out again here: the next
slot is the training scheduler's own plan, progress and outcomes are its command rows, and whether
anything will run a queued training is its heartbeat. A command reads in the same words as in
``cryptocast commands`` (:mod:`cryptocast.sql.cli` makes the one-line summaries).
"""

from __future__ import annotations

from datetime import datetime

from dash import html

from cryptocast.dashboard.panels import table, when
from cryptocast.sql.cli import describe_outcome, describe_progress

MODELS_HEADER = [
    "kind",
    "version",
    "status",
    "serves",
    "trained",
    "val skill",
    "test skill",
    "gate",
    "live (n, skill, coverage 80/95)",
    "test bands (coverage 80/95, interval score 80/95 bps)",
]


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _signed(value: float | str | None) -> str:
    return "—" if value is None else f"{float(value):+.3f}"


def command_status(view: dict) -> str:
    """One line for a training command: which one, and where it stands or what it came to."""
    head = f"{view['kind'].capitalize()} of {view['symbol']}, command {view['id']}"
    if view["status"] == "pending":  # an interrupted run that was queued again says so in ``error``
        return f"{head}: queued" + (f" ({view['error']})" if view["error"] else "")
    if view["status"] == "running":
        return f"{head}: running — {describe_progress(view['progress']) or 'starting'}"
    took = f" after {_duration(view['seconds'])}" if view["seconds"] is not None else ""  # None: it never ran
    ended, outcome = f"{head}: {view['status']}{took}", describe_outcome(view)
    return f"{ended} — {outcome}" if outcome else ended


def retrain_accepted(answer: dict) -> str:
    """The answer to *Retrain now* (202): the queued command, and a warning when nothing will run it."""
    scheduler = answer["scheduler"]
    return command_status(answer) + ("" if scheduler["running"] else f" — {scheduler['message']}")


def _scheduler(scheduler: dict) -> html.P:
    if not scheduler["running"]:
        return html.P(scheduler["message"], className="message")
    beat = datetime.fromisoformat(scheduler["heartbeat_at"]).strftime("%H:%M:%S UTC")
    return html.P(f"Training scheduler running (heartbeat {beat}).")


def _last(view: dict | None) -> list:
    """When the last training finished, what it came to and, for a new LSTM, the gate per horizon."""
    if view is None:
        return [html.P([html.Strong("Last: "), "no training yet."])]
    line = html.P([html.Strong("Last: "), f"finished {when(view['finished_at'])} · {command_status(view)}"])
    gate = (view["result"] or {}).get("gate") or []
    return [line, html.Ul([html.Li(d["reason"]) for d in gate], className="gate")] if gate else [line]


def _history(training: dict) -> str:
    note = training["note"] or "enough for a training"
    days = training["history_days"]
    return f"History: {note}." if days is None else f"History: {days:.2f} days; {note}."


def training_panel(training: dict) -> list:
    """The scheduler's state, the training under way, the last one, the next planned and the history."""
    planned, current = training["next"], training["current"]
    upcoming = f"{planned['kind']} at {when(planned['at'])}" if planned else "nothing planned."
    return [
        _scheduler(training["scheduler"]),
        *([html.P([html.Strong("Now: "), command_status(current)])] if current else []),
        *_last(training["last"]),
        html.P([html.Strong("Next: "), upcoming]),
        html.P(_history(training)),
    ]


def _serves(version: dict) -> str:
    """The horizons a version answers: the LSTM's from the gate, the persistence champion's the rest."""
    if version["kind"] == "persistence":
        return "floor (the rest)" if version["status"] == "champion" else "—"
    return " ".join(f"+{h}" for h in version["served_horizons"]) or "—"


def _test_skill(metrics: dict) -> str:
    """Skill per horizon on the test window the gate judged (the persistence's is 0 by definition)."""
    by_horizon = sorted((metrics.get("test") or {}).items(), key=lambda kv: int(kv[0]))
    return " ".join(f"+{h}: {_signed(s.get('skill'))}" for h, s in by_horizon) or "—"


def _gate(metrics: dict) -> str:
    """The gate's verdict per horizon: ✓ serves, ✗ does not (the status reason says why)."""
    verdicts = [f"+{d['horizon']} {'✓' if d['promote'] else '✗'}" for d in metrics.get("gate") or []]
    return " ".join(verdicts) or "—"


def _live(scores: list[dict]) -> list | str:
    """Per horizon: scored forecasts, skill and coverage; a version's unserved forecasts say shadow."""
    rows = sorted(scores, key=lambda s: (s["horizon"], not s["served"]))
    return [
        html.Div(
            f"+{s['horizon']}: {int(s['n'])}, {_signed(s['skill'])}, {_points(s['coverage_80'])}/"
            f"{_points(s['coverage_95'])} %" + ("" if s["served"] else " shadow")
        )
        for s in rows
    ] or "—"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _bps(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _test_bands(scores: dict) -> list | str:
    """Per horizon, the test window's coverage of each band and its interval score (``scores`` of
    ``GET /models/{symbol}``); the hover names the worst volatility decile and hour."""
    lines = []
    for h, s in scores.items():
        b80, b95 = s["bands"]["80"], s["bands"]["95"]
        text = (
            f"+{h}: {_percent(b80['coverage'])}/{_percent(b95['coverage'])} %, "
            f"{_bps(b80['interval_score_bps'])}/{_bps(b95['interval_score_bps'])}"
        )
        lines.append(html.Div(text, title="; ".join(filter(None, (_worst(b80, "80"), _worst(b95, "95"))))))
    return lines or "—"


def _worst(band: dict, key: str) -> str:
    """The lowest coverage of the band over volatility deciles and over hours, where stored."""
    parts = []
    for name, label in (("by_vol_decile", "volatility decile"), ("by_hour", "hour")):
        found = [(c, i) for i, c in enumerate((band.get(name) or {}).get("coverage") or []) if c is not None]
        if found:
            coverage, where = min(found)
            parts.append(f"worst {label} {where}: {100 * coverage:.1f} %")
    return f"{key} % band: " + "; ".join(parts) if parts else ""


def models_table(answer: dict) -> html.Table | html.P:
    """Every version of the pair (``GET /models/{symbol}``), newest first, with its gate and live scores."""
    rows = [
        [
            v["kind"],
            f"v{v['version']}",
            html.Span(v["status"], title=v["reason"] or ""),
            _serves(v),
            when(v["trained_at"]),
            _signed(v["metrics"].get("val_skill")),
            _test_skill(v["metrics"]),
            _gate(v["metrics"]),
            _live(v["live"]),
            _test_bands(v.get("scores") or {}),
        ]
        for v in answer["versions"]
    ]
    if not rows:
        return html.P(f"{answer['symbol']}: no model yet.")
    return table(MODELS_HEADER, rows, "models-table")


def _points(share: float | None) -> str:
    """A coverage in whole percentage points; a dash where no interval was stored."""
    return "–" if share is None else f"{100 * float(share):.0f}"
