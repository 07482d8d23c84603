"""Plotly figures built from API answers: the main price chart, the top-of-book chart, the bands'
calibration, messages.

Times arrive as ISO 8601 with a UTC offset; Plotly has no time zones, so they are drawn as naive
UTC and every time axis says so. The price chart's ``uirevision`` (pair/window) names the chart on
screen: live updates of the same one only patch its traces (see ``app``), so zoom and legend choices
stay; a new pair or window changes it, which is when a reset is expected.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

UTC_AXIS = "time (UTC)"
CANDLES_NAME = "1m candles"
FORECAST_NAME = "forecast"
BAND_NAMES = {80: "80 % band", 95: "95 % band"}
BAND_FILLS = {80: "rgba(31, 119, 180, 0.30)", 95: "rgba(31, 119, 180, 0.13)"}
FORECAST_COLOR = "#1f77b4"
PAST_COLORS = ["#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
BID_COLOR, ASK_COLOR, SPREAD_COLOR = "#2ca02c", "#d62728", "#7f7f7f"
BPS = 10_000
CHART_HEIGHT = 560
BOOK_HEIGHT = 300
CALIBRATION_HEIGHT = 340
BAND_COLORS = {"80": "#1f77b4", "95": "#9467bd"}
ERROR_BAR_SE = 2  # the reliability points' bars: ± this many standard errors
HORIZON_SPREAD = 0.012  # the reliability points of one band, set apart by horizon along the nominal axis
HOURS = 24
MARGIN = {"l": 60, "r": 20, "t": 50, "b": 40}


def utc(text: str) -> str:
    """``2025-03-01T12:00:00+00:00`` → ``2025-03-01 12:00:00`` (what Plotly reads as a plain time)."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S")


def message_figure(text: str, height: int = CHART_HEIGHT) -> go.Figure:
    """A figure that carries a sentence instead of data, so no panel is ever blank."""
    fig = go.Figure()
    fig.add_annotation(
        text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16}
    )
    fig.update_layout(
        height=height,
        template="plotly_white",
        margin=MARGIN,
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def revision(symbol: str | None, view: str) -> str:
    """The price chart's ``uirevision``: one per pair and view (``ranges.View.key``)."""
    return f"{symbol}/{view}"


def time_axis(xrange: tuple[datetime, datetime] | None) -> dict:
    """A UTC time axis, over ``xrange`` exactly when given (a picked range), else fitted to the data."""
    axis: dict = {"title": UTC_AXIS}
    if xrange is not None:
        axis["range"] = [t.strftime("%Y-%m-%d %H:%M:%S") for t in xrange]
    return axis


def price_figure(
    symbol: str,
    view: str,
    candles: dict,
    past: list[dict],
    latest: dict | None,
    xrange: tuple[datetime, datetime] | None = None,
) -> go.Figure:
    """Candlesticks, past forecasts at their target times, and the newest forecast with its bands;
    over ``xrange`` when the viewer picked one."""
    rows = candles["candles"]
    fig = go.Figure()
    fig.add_trace(
        go.Candlestick(
            x=[utc(r[0]) for r in rows],
            open=[r[1] for r in rows],
            high=[r[2] for r in rows],
            low=[r[3] for r in rows],
            close=[r[4] for r in rows],
            name=CANDLES_NAME,
        )
    )
    _add_past(fig, past)
    if latest is not None and latest["predictions"] and rows:
        _add_forecast(fig, latest, rows[-1])
    last = rows[-1][0] if rows else None
    title = f"{symbol} · last candle {utc(last)} UTC" if last else f"{symbol} · no candles in this window"
    fig.update_layout(
        title={"text": title, "x": 0.01},
        height=CHART_HEIGHT,
        template="plotly_white",
        margin=MARGIN,
        uirevision=revision(symbol, view),
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.12},
        xaxis=time_axis(xrange) | {"rangeslider": {"visible": False}},
        yaxis={"title": "price", "side": "right"},
    )
    return fig


def _add_past(fig: go.Figure, past: list[dict]) -> None:
    """One line per horizon: what was forecast for each minute, against the candles there."""
    by_horizon: dict[int, list[dict]] = defaultdict(list)
    for p in past:
        by_horizon[p["horizon"]].append(p)
    for i, (horizon, rows) in enumerate(sorted(by_horizon.items())):
        rows.sort(key=lambda r: r["target_time"])
        fig.add_trace(
            go.Scatter(
                x=[utc(r["target_time"]) for r in rows],
                y=[r["predicted"] for r in rows],
                mode="lines",
                name=f"past +{horizon} min forecast",
                line={"color": PAST_COLORS[i % len(PAST_COLORS)], "width": 1},
                visible=True if i == 0 else "legendonly",
            )
        )


def _add_forecast(fig: go.Figure, latest: dict, last_candle: list) -> None:
    """The forecast path from the newest close through every horizon, 95 % under 80 % bands."""
    rows = sorted(latest["predictions"], key=lambda r: r["horizon"])
    origin_close = last_candle[4] if last_candle[0] == latest["origin_time"] else rows[0]["predicted"]
    x = [utc(latest["origin_time"])] + [utc(r["target_time"]) for r in rows]
    for level in (95, 80):
        upper = [origin_close] + [r[f"upper_{level}"] for r in rows]
        lower = [origin_close] + [r[f"lower_{level}"] for r in rows]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=upper,
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
                legendgroup=BAND_NAMES[level],
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=lower,
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=BAND_FILLS[level],
                name=BAND_NAMES[level],
                legendgroup=BAND_NAMES[level],
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[origin_close] + [r["predicted"] for r in rows],
            mode="lines+markers",
            name=FORECAST_NAME,
            line={"color": FORECAST_COLOR, "width": 2, "dash": "dot"},
            text=["now"] + [f"+{r['horizon']} min" for r in rows],
            hovertemplate="%{text}: %{y}<extra></extra>",
        )
    )


def book_figure(symbol: str, book: dict, xrange: tuple[datetime, datetime]) -> go.Figure:
    """Best bid and ask per minute over ``xrange``, and the spread in basis points on its own axis."""
    rows = book["top_of_book"]
    if not rows:
        return message_figure(f"{symbol}: no top-of-book quotes in this range", BOOK_HEIGHT)
    x = [utc(r[0]) for r in rows]
    spread = [BPS * (r[3] - r[1]) / ((r[3] + r[1]) / 2) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r[1] for r in rows], name="bid", line={"color": BID_COLOR}))
    fig.add_trace(go.Scatter(x=x, y=[r[3] for r in rows], name="ask", line={"color": ASK_COLOR}))
    fig.add_trace(
        go.Scatter(x=x, y=spread, name="spread (bps)", yaxis="y2", line={"color": SPREAD_COLOR, "width": 1})
    )
    fig.update_layout(
        height=BOOK_HEIGHT,
        template="plotly_white",
        margin=MARGIN,
        uirevision=symbol,  # a new range (the app's) is drawn; a zoom stays while the range does
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.25},
        xaxis=time_axis(xrange),
        yaxis={"title": "price"},
        yaxis2={"title": "spread (bps)", "overlaying": "y", "side": "right"},
    )
    return fig


def _pooled_by_hour(horizons: dict, key: str) -> list[float | None]:
    """Coverage of band ``key`` per UTC hour over every horizon, each weighted by its scored count."""
    out = []
    for hour in range(HOURS):
        hits = n = 0.0
        for scores in horizons.values():
            by_hour = scores["bands"][key]["by_hour"]
            count, coverage = by_hour["n"][hour], by_hour["coverage"][hour]
            if count and coverage is not None:
                hits, n = hits + coverage * count, n + count
        out.append(hits / n if n else None)
    return out


def calibration_figure(symbol: str, answer: dict) -> go.Figure:
    """Reliability (observed vs nominal coverage per horizon, ± 2 SE) and coverage by UTC hour, both
    from ``GET /pairs/{symbol}/scores``: a calibrated band sits on its nominal in both."""
    horizons = dict(sorted(answer["horizons"].items(), key=lambda kv: int(kv[0])))
    if not horizons:
        return message_figure(
            f"{symbol}: no scored forecasts in the last {answer['window_minutes']} minutes",
            CALIBRATION_HEIGHT,
        )
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.35, 0.65],
        subplot_titles=("reliability: observed vs nominal", "coverage by UTC hour (all horizons)"),
    )
    nominals = [band["nominal"] for band in next(iter(horizons.values()))["bands"].values()]
    ends = [min(nominals) - 0.1, 1.0]
    fig.add_trace(
        go.Scatter(x=ends, y=ends, mode="lines", name="nominal", line={"color": "#7f7f7f", "dash": "dash"}),
        row=1,
        col=1,
    )
    for key, color in BAND_COLORS.items():
        bands = [(h, s["bands"][key]) for h, s in horizons.items() if key in s["bands"]]
        apart = [(i - (len(bands) - 1) / 2) * HORIZON_SPREAD for i in range(len(bands))]
        fig.add_trace(
            go.Scatter(
                x=[b["nominal"] + d for (_, b), d in zip(bands, apart, strict=True)],
                y=[b["coverage"] for _, b in bands],
                mode="markers+text",
                customdata=[b["nominal"] for _, b in bands],
                hovertemplate="nominal %{customdata}: observed %{y:.3f}<extra>%{text}</extra>",
                text=[f"+{h}" for h, _ in bands],
                textposition="top center",
                name=f"{key} % band",
                legendgroup=key,
                marker={"color": color, "size": 8},
                error_y={"type": "data", "array": [ERROR_BAR_SE * b["coverage_se"] for _, b in bands]},
            ),
            row=1,
            col=1,
        )
        nominal = bands[0][1]["nominal"]
        fig.add_trace(
            go.Scatter(
                x=list(range(HOURS)),
                y=_pooled_by_hour(horizons, key),
                mode="lines+markers",
                name=f"{key} % by hour",
                legendgroup=key,
                line={"color": color},
            ),
            row=1,
            col=2,
        )
        fig.add_trace(
            go.Scatter(
                x=[0, HOURS - 1],
                y=[nominal, nominal],
                mode="lines",
                showlegend=False,
                hoverinfo="skip",
                line={"color": color, "dash": "dot", "width": 1},
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="nominal", range=ends, row=1, col=1)
    fig.update_yaxes(title_text="observed", range=[ends[0], ends[1] + 0.02], row=1, col=1)
    fig.update_xaxes(title_text="hour of the origin (UTC)", range=[-0.5, HOURS - 0.5], row=1, col=2)
    fig.update_layout(
        height=CALIBRATION_HEIGHT,
        template="plotly_white",
        margin=MARGIN,
        uirevision=symbol,
        legend={"orientation": "h", "y": -0.3},
    )
    return fig
