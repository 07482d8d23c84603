"""The page: sign-in, banner, controls, price chart, accuracy, top of book, calibration, training, models and
system panels.

The sign-in field is a password input whose value the sign-in callback clears at once; nothing the
page holds (components, stores) carries a token. Removing a pair asks first (the browser's confirm
dialog); deleting a pair with its data is a separate control that needs the pair's symbol typed.
"""

from __future__ import annotations

from dash import dcc, html

from cryptocast.dashboard import ranges
from cryptocast.dashboard.client import EXPORTS, shown_url

WINDOWS = {"1h": 60, "6h": 360, "1d": 1440, "1w": 10080}  # presets: minutes of candles, following live
DEFAULT_WINDOW = "6h"
FOLLOW = "follow"  # the follow-live toggle's value when on
FAST_POLL_MS = 1000  # new candle / new forecast check
NO_PAIR = "No pair selected."
# banner, accuracy, book, calibration, training, models and system panels; a followed command
SLOW_POLL_MS = 5000

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
header { display: flex; align-items: baseline; gap: 1rem; padding: .6rem 1.2rem; background: #1d2330; color: #fff; }
header h1 { font-size: 1.3rem; margin: 0; }
main { padding: .6rem 1.2rem; }
.banner { background: #ffcc00; color: #3a2c00; padding: .5rem 1.2rem; font-size: .95rem; line-height: 1.4;
          white-space: nowrap; overflow: hidden; text-overflow: ellipsis; cursor: help; }
.controls { display: flex; flex-wrap: wrap; gap: .8rem; align-items: center; margin-bottom: .4rem; }
.controls .picker { width: 14rem; }
.controls .dash-input-container, .auth .dash-input-container, .purge .dash-input-container { width: 16rem; }
.controls .range-input { width: 11.5rem; }
.controls .export-kind { width: 10rem; }
.card { background: #fff; border-radius: 6px; padding: .6rem .9rem; margin-bottom: .8rem;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.message { color: #8a1f11; font-weight: 600; min-height: 1.2em; }
.progress { color: #1f4f8a; min-height: 1.2em; }
.grid { border-collapse: collapse; font-size: .85rem; width: 100%; }
.grid th, .grid td { border-bottom: 1px solid #e3e6ea; padding: .2rem .4rem; text-align: right; white-space: nowrap; }
.grid th:first-child, .grid td:first-child { text-align: left; }
h2 { font-size: 1rem; margin: .2rem 0 .4rem; }
.card-head { display: flex; align-items: baseline; gap: 1rem; }
.gate { font-size: .85rem; margin: 0 0 .4rem; }
.auth { display: flex; flex-wrap: wrap; gap: .6rem; align-items: center; margin: .4rem 0; font-size: .9rem; }
.purge { font-size: .9rem; margin: .2rem 0 .4rem; }
.purge[open] { display: flex; flex-wrap: wrap; gap: .6rem; align-items: center; }
"""

INDEX = (
    """<!DOCTYPE html>
<html><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}<style>"""
    + STYLE
    + """</style></head>
<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""
)


def controls() -> html.Div:
    return html.Div(
        [
            dcc.Dropdown(id="pair", className="picker", clearable=False, placeholder="pair"),
            dcc.RadioItems(id="window", options=list(WINDOWS), value=DEFAULT_WINDOW, inline=True),
            dcc.Checklist(id="follow", options=[{"label": "follow live", "value": FOLLOW}], value=[FOLLOW]),
            dcc.Input(id="new-pair", placeholder="add a pair, e.g. ETHUSDT", debounce=False, type="text"),
            html.Button("Add pair", id="add-pair"),
            html.Button("Remove selected pair", id="remove-pair"),
            dcc.ConfirmDialog(id="confirm-remove"),
        ],
        className="controls",
    )


def _typed_time(label: str, input_id: str) -> tuple[html.Label, dcc.Input]:
    """A labelled text box for one end of the range: a UTC time, bounded in length."""
    box = dcc.Input(
        id=input_id, className="range-input", placeholder=ranges.TYPED, type="text", maxLength=ranges.MAX_TEXT
    )
    return html.Label(label, htmlFor=input_id), box


def time_range() -> html.Div:
    """Typed start and end (UTC) of a range to show, and the download of the shown pair over it."""
    return html.Div(
        [
            *_typed_time("from", "range-start"),
            *_typed_time("to", "range-end"),
            html.Button("Show range", id="show-range"),
            dcc.Dropdown(
                id="export-kind",
                className="export-kind",
                options=list(EXPORTS),
                value=EXPORTS[0],
                clearable=False,
            ),
            html.Button("Download CSV", id="download"),
            dcc.Download(id="download-file"),
            html.Span(id="range-message", className="message"),
        ],
        className="controls",
    )


def sign_in() -> html.Div:
    """The viewer's own API token for changes; reads need none."""
    return html.Div(
        [
            html.Label("Sign in with an API token", htmlFor="token"),
            dcc.Input(id="token", type="password", placeholder="API token", autoComplete="off", value=""),
            html.Button("Sign in", id="sign-in"),
            html.Button("Sign out", id="sign-out", hidden=True),
            html.Span(id="auth-status"),
        ],
        className="auth",
    )


def purge() -> html.Details:
    """Deleting the selected pair and its data: typed symbol first, then the button."""
    return html.Details(
        [
            html.Summary("Delete the selected pair and its data"),
            html.Span(
                "Stops the pair and deletes its candles, order book, forecasts and models. Type its symbol:"
            ),
            dcc.Input(
                id="purge-symbol", placeholder="the pair's symbol", autoComplete="off", type="text", value=""
            ),
            html.Button("Delete pair and data", id="purge-pair"),
        ],
        className="purge",
    )


def page(api_url: str) -> html.Div:
    return html.Div(
        [
            html.Header([html.H1("cryptocast"), html.Span(f"API {shown_url(api_url)} · all times UTC")]),
            html.Div(id="replay-banner", className="banner", hidden=True),
            html.Main(
                [
                    html.Div(id="api-message", className="message"),
                    sign_in(),
                    controls(),
                    time_range(),
                    purge(),
                    html.Div(id="pair-message", className="message"),
                    html.Div(id="pair-progress", className="progress"),
                    html.Div(
                        [
                            html.Div(id="chart-message", className="message"),
                            dcc.Graph(id="price-chart", config={"displaylogo": False}),
                        ],
                        className="card",
                    ),
                    html.Div(
                        [
                            html.Div(
                                [html.H2("Accuracy (live, rolling)"), html.Div(id="accuracy")],
                                className="card",
                            ),
                            html.Div(
                                [
                                    html.H2("Top of book (the shown range)"),
                                    dcc.Graph(id="book-chart", config={"displaylogo": False}),
                                ],
                                className="card",
                            ),
                        ],
                        className="row",
                    ),
                    html.Div(
                        [
                            html.H2("Calibration (live, rolling)"),
                            html.Div(id="calibration"),
                            dcc.Graph(id="calibration-chart", config={"displaylogo": False}),
                        ],
                        className="card",
                    ),
                    html.Div(
                        [
                            html.Div(
                                [html.H2("Training"), html.Button("Retrain now", id="retrain")],
                                className="card-head",
                            ),
                            html.Div(id="retrain-message", className="progress"),
                            html.Div(id="training"),
                        ],
                        className="card",
                    ),
                    html.Div([html.H2("Models"), html.Div(id="models")], className="card"),
                    html.Div([html.H2("System"), html.Div(id="system")], className="card"),
                ]
            ),
            dcc.Interval(id="fast-tick", interval=FAST_POLL_MS),
            dcc.Interval(id="slow-tick", interval=SLOW_POLL_MS),
            dcc.Store(id="stamp"),
            dcc.Store(id="view", data=ranges.to_store(ranges.live(WINDOWS[DEFAULT_WINDOW]))),
            dcc.Store(id="chart-answer"),  # the price chart's newest answer, drawn in the browser
            dcc.Store(id="pending"),
            dcc.Store(id="following"),  # the id of the training command the page follows; None when none
        ]
    )
