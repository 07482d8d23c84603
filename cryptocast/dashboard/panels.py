"""HTML pieces built from API answers: replay banner, pair progress, accuracy, calibration and system tables."""

from __future__ import annotations

from datetime import UTC, datetime

from dash import html

from cryptocast.settings import EXCHANGE_URLS

LIVE_REST_URLS = frozenset(rest for rest, _ in EXCHANGE_URLS.values())
NOMINAL = (80, 95)
BACKFILLING = ("new", "backfilling")


def when(text: str | None) -> str:
    """An ISO time from the API as the page shows it (UTC, to the minute)."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC") if text else "—"


def _age(text: str | None, now: datetime) -> str:
    if not text:
        return "—"
    seconds = (now - datetime.fromisoformat(text)).total_seconds()
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(seconds, 0) / 60:.0f} min"


def table(header: list[str], rows: list[list], table_id: str) -> html.Table:
    """A ``grid`` table; a cell is text or a component."""
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in header])),
            html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows]),
        ],
        id=table_id,
        className="grid",
    )


def is_replay(health: dict) -> bool:
    """The exchange is the replay when the API says so, or when it is not a known live endpoint."""
    exchange = health.get("exchange") or {}
    return "replay" in exchange or exchange.get("url", "").rstrip("/") not in LIVE_REST_URLS


def replay_banner(health: dict, clock: str | None) -> tuple[list, str]:
    """The banner's one line, and its details for the hover title: recordings and their time shift,
    speed, the exchange's clock (``clock``, ISO) and the source when it is a public one."""
    exchange = health.get("exchange") or {}
    details = exchange.get("replay") or {}
    line = [html.Strong("REPLAY EXCHANGE"), " — replayed recordings, not the live market"]
    facts = []
    if details:
        recordings = ", ".join(f"{s}: {r}" for s, r in sorted((details.get("recordings") or {}).items()))
        line.append(f" · {details.get('speed', '—')}× · clock {when(clock)}")
        facts += [
            f"Recordings {recordings or '—'}, shifted by {details.get('shift', '—')}",
            f"speed {details.get('speed', '—')}× the recorded time",
        ]
    facts.append(f"exchange clock {when(clock)}")
    if exchange.get("url"):  # the API names only public endpoints; a replay's address stays with it
        facts.append(f"source {exchange['url']}")
    return line, "; ".join(facts) + "."


def pair_progress(symbol: str, row: dict | None, detail: dict | None) -> str:
    """One line for the add-pair flow: requested → backfilling (%, ETA) → training → live."""
    if row is None:
        return f"{symbol}: requested, waiting for ingestion to pick it up"
    if row["status"] in BACKFILLING:
        b = row["backfill"]
        pct = f"{b['percent']:.1f} %" if b["percent"] is not None else "starting"
        eta = f", about {b['eta_s']:.0f} s left" if b["eta_s"] is not None else ""
        return f"{symbol}: backfilling {pct}{eta}"
    if row["status"] == "live" and detail is not None and not detail["freshness"]["models"]:
        return f"{symbol}: training (the first model comes after 240 minutes of candles)"
    return f"{symbol}: {row['status']}"


def accuracy_panel(detail: dict) -> list:
    """Rolling MAE model vs persistence, skill and coverage vs nominal per horizon; model facts."""
    now = datetime.now(UTC)
    live = detail["live_skill"]
    rows = []
    for h, raw in sorted(live["horizons"].items(), key=lambda kv: int(kv[0])):
        s = {k: float(v) for k, v in raw.items()}  # averages of SQL numerics arrive as strings
        rows.append(
            [
                f"+{h} min",
                str(int(s["n"])),
                f"{s['mae']:.4g}",
                f"{s['mae_persistence']:.4g}",
                f"{s['skill']:+.3f}",
                f"{percent(s['coverage_80'], 1)} (80 %)",
                f"{percent(s['coverage_95'], 1)} (95 %)",
            ]
        )
    header = ["horizon", "scored", "MAE model", "MAE persistence", "skill", "coverage 80", "coverage 95"]
    models = detail["freshness"]["models"]
    facts = [
        f"{m['kind']} v{m['version']}, trained {when(m['trained_at'])} ({_age(m['trained_at'], now)} ago)"
        for m in models
    ] or ["no model yet"]
    return [
        html.P(f"Models: {'; '.join(facts)}."),
        html.P(f"Scores over the last {live['window_minutes']} minutes."),
        table(header, rows, "accuracy-table") if rows else html.P("No scored predictions yet."),
    ]


CALIBRATION_HEADER = [
    "horizon",
    "scored (n/h)",
    "coverage 80 ± SE",
    "interval score 80",
    "Kupiec p 80",
    "coverage 95 ± SE",
    "interval score 95",
    "Kupiec p 95",
    "WIS",
]


def _p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _band_cells(band: dict) -> list[str]:
    """Coverage against nominal with its standard error, the interval score (bps), Kupiec's p."""
    return [
        f"{100 * band['coverage']:.1f} ± {100 * band['coverage_se']:.1f} % ({100 * band['nominal']:.0f} %)",
        f"{band['interval_score_bps']:.2f} bps",
        _p_value(band["kupiec_p"]),
    ]


def calibration_panel(answer: dict) -> list:
    """The served bands' live scores per horizon (``GET /pairs/{symbol}/scores``): coverage vs nominal,
    interval score and Kupiec's test per band, and the weighted interval score."""
    rows = [
        [
            f"+{h} min",
            f"{s['n']} ({s['n_effective']:.0f})",
            *_band_cells(s["bands"]["80"]),
            *_band_cells(s["bands"]["95"]),
            f"{s['wis_bps']:.2f} bps",
        ]
        for h, s in sorted(answer["horizons"].items(), key=lambda kv: int(kv[0]))
    ]
    return [
        html.P(
            f"Served bands over the last {answer['window_minutes']} minutes; scores in basis points of the "
            "close, SE and Kupiec's test on n/h non-overlapping outcomes."
        ),
        table(CALIBRATION_HEADER, rows, "calibration-table")
        if rows
        else html.P("No scored predictions yet."),
    ]


def system_panel(pairs: list[dict]) -> html.Table:
    """Every pair's state, lag, completeness and restarts (from ``GET /status``: one query for all)."""
    rows = []
    for p in pairs:
        lag, completeness, alarm = p["data_lag_s"], p["completeness_percent"], p["alarm"] or {}
        rows.append(
            [
                p["symbol"],
                p["status"],
                f"{lag:.1f} s" if lag is not None else "—",
                f"{completeness:.2f} %" if completeness is not None else "—",
                str(p["restarts"]),
                when(p["last_candle_time"]),
                p["last_error"] or alarm.get("message") or "",
            ]
        )
    header = ["pair", "state", "lag", "completeness", "restarts", "last candle", "problem"]
    return table(header, rows, "system-table")


def percent(share: float | None, digits: int) -> str:
    """A share as a percentage; a dash where no interval was stored to cover anything."""
    return "–" if share is None else f"{100 * float(share):.{digits}f} %"
