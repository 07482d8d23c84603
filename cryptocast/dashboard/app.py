"""The Dash application and its callbacks; every value on the page comes from the HTTP API.

Live updates: a 1 s interval asks ``GET /pairs`` and the selected pair's newest forecast and
writes a small *stamp* (last candle, forecast origin) only when it differs from the one on the
page, so the chart is fetched and redrawn only after a candle closes or a forecast is stored.

Changes (add, remove, delete with data, *Retrain now*) go to the API with the token of the viewer
who signed in on this page, kept on the server (:mod:`cryptocast.dashboard.session`), or with none:
the API decides, and a 401 without a sign-in reads as the sentence that asks for one. Removing a
pair waits for the browser's confirm dialog; deleting its data needs its symbol typed. A retrain is
then followed on the 5 s interval until it is done or failed; the training panel and the models
table are read on the same interval.

Every value a callback gets comes back from the browser, where anyone can rewrite it: a pair symbol
is checked against the pair pattern before a request is built with it, the shown range against its
bounds (:mod:`cryptocast.dashboard.ranges`), a command id against the API's bounds and the page's
stamp against the shape it was written in.

The chart's answer is drawn in the browser (``DRAW_CHART_JS``), only while the pair and range it
was made for are still the page's: answers can arrive out of order. A redraw of the chart already on
screen (same pair and range) replaces its traces and title, never its layout: ``dcc.Graph`` writes a
drag zoom into its own ``figure`` prop, and a whole new layout without it would autorange the axis.
A new pair or range (a preset, a picked range, following live or not) is a whole figure, which resets
the zoom. While following live, the range keeps its length and ends at the newest candle; a picked
range is drawn over exactly its span.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeGuard

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from cryptocast.dashboard import figures, health, panels, ranges, session, training
from cryptocast.dashboard.changes import refusal, register_changes
from cryptocast.dashboard.client import ApiClient, ApiProblem, checked_symbol, is_symbol
from cryptocast.dashboard.layout import INDEX, NO_PAIR, page
from cryptocast.dashboard.rangeview import DEFAULT_VIEW, register_range
from cryptocast.dashboard.session import SessionStore
from cryptocast.sql.schema import OPEN_STATUSES

if TYPE_CHECKING:
    from dash import NoUpdate

PAST_FORECAST_SPAN = timedelta(days=1)  # past forecasts drawn at most this far back (4 rows a minute)
MAX_COMMAND_ID = 2**63 - 1  # the API's bound on a command id (a bigint)
MAX_SHOWN_ERROR = 500  # characters of a stamp's error sentence the chart shows

# The picker's value: a pair just added, else the current one while it is listed, else the first.
# It runs in the browser: a server round trip would answer for the value the picker held when it
# left, and a pair the viewer picked meanwhile would be replaced by that answer.
CHOOSE_PAIR_JS = """
function (options, pending, current) {
    const fired = dash_clientside.callback_context.triggered.map((t) => t.prop_id);
    if (fired.includes("pending.data") && typeof pending === "string" && pending) {
        return pending;
    }
    const values = (options || []).map((o) => o && o.value);
    if (values.length === 0 || values.includes(current)) {
        return dash_clientside.no_update;
    }
    return values[0];
}
"""
# Draws a chart answer. Answers can come back out of order (a slow one for the range before a
# change, or for the pair picked before), so one is drawn only while its pair and view are still
# the page's, and never over a newer candle of the same chart. An answer for the chart on screen
# (same ``uirevision``) changes its traces and title only: ``dcc.Graph`` writes a drag zoom into the
# figure's layout, and a whole new layout would autorange it away. A ``keep`` answer (a failed read)
# leaves that chart as it is and is drawn, as a sentence, only over another.
DRAW_CHART_JS = """
function (answer, stamp, view, current) {
    const unchanged = dash_clientside.no_update;
    const symbol = stamp && stamp.symbol ? stamp.symbol : null;
    if (!answer || answer.symbol !== symbol || JSON.stringify(answer.view ?? null) !== JSON.stringify(view ?? null)) {
        return unchanged;
    }
    const next = answer.figure;
    const layout = current && current.layout;
    const same = Boolean(layout) && layout.uirevision === answer.revision;
    if (!same) {
        return next;
    }
    const newest = next.layout.meta && next.layout.meta.last;
    if (answer.keep || (newest && layout.meta && layout.meta.last && newest < layout.meta.last)) {
        return unchanged;
    }
    return {data: next.data, layout: {...layout, title: next.layout.title, meta: next.layout.meta}};
}
"""


def create_app(api_url: str) -> Dash:
    """The dashboard for the API at ``api_url``: no token of its own, viewers sign in for changes."""
    app = Dash(__name__, title="cryptocast", update_title=None)  # type: ignore[arg-type]  # Dash documents None (no "Updating..." title) but annotates str
    app.index_string = INDEX
    app.layout = page(api_url)
    sessions = SessionStore()
    session.install(app.server)
    health.install(app.server, api_url)
    api = ApiClient(api_url)
    register_callbacks(app, api, sessions)
    register_changes(app, api, sessions)
    register_range(app, api)
    return app


def register_callbacks(app: Dash, api: ApiClient, sessions: SessionStore) -> None:
    @app.callback(
        Output("pair", "options"),
        Output("stamp", "data"),
        Output("pair-progress", "children"),
        Output("api-message", "children"),
        Input("fast-tick", "n_intervals"),
        Input("pair", "value"),
        State("pending", "data"),
        State("stamp", "data"),
    )
    def poll(_: int | None, selected: object, pending: object, shown: dict | None) -> tuple:
        symbol = selected if is_symbol(selected) else None
        try:
            rows = {r["symbol"]: r for r in api.pairs() if r["status"] != "removed"}
        except ApiProblem as exc:
            return no_update, _changed({"symbol": symbol, "error": exc.message}, shown), "", exc.message
        options = [{"label": f"{s} ({r['status']})", "value": s} for s, r in sorted(rows.items())]
        pending = pending if is_symbol(pending) else None
        if pending and pending not in rows:
            options.append({"label": f"{pending} (requested)", "value": pending})
        stamp = {"symbol": symbol}
        if symbol is not None and symbol in rows:
            stamp |= {
                "status": rows[symbol]["status"],
                "last": rows[symbol]["last_candle_time"],
                "origin": _latest_origin(api, symbol),
            }
        return options, _changed(stamp, shown), _progress(api, pending, rows), ""

    app.clientside_callback(
        CHOOSE_PAIR_JS,
        Output("pair", "value"),
        Input("pair", "options"),
        Input("pending", "data"),
        State("pair", "value"),
    )

    @app.callback(
        Output("chart-answer", "data"),
        Output("chart-message", "children"),
        Input("stamp", "data"),
        Input("view", "data"),
    )
    def chart(shown: object, stored: object) -> tuple:
        """The chart for the stamp and view this request saw, labelled with both: ``DRAW_CHART_JS``
        draws it only while they are still the page's."""
        stamp = _stamp(shown)
        symbol = stamp.get("symbol")
        view = ranges.from_store(stored, DEFAULT_VIEW)

        def answer(fig: go.Figure, keep: bool = False) -> dict:
            return {
                "symbol": symbol,
                "view": ranges.to_store(view),
                "revision": figures.revision(symbol, view.key()),
                "keep": keep,
                "figure": fig.to_plotly_json(),
            }

        def problem(text: str, keep: bool) -> tuple:
            """A sentence above the chart, and as the chart unless ``keep`` finds this pair's chart
            over this range on screen: a failed read must not throw away the viewer's zoom."""
            return answer(figures.message_figure(text), keep=keep), text

        if stamp.get("error"):
            return problem(stamp["error"], keep=True)
        if not symbol:
            return problem("No pair selected: add one above.", keep=False)
        if not stamp.get("last"):
            return problem(
                f"{symbol}: no candles stored yet ({stamp.get('status') or 'requested'}).", keep=False
            )
        last = stamp["last"]
        start, end = view.window(last)
        try:
            candles = api.candles(symbol, start, end)
            past = api.predictions(symbol, max(start, end - PAST_FORECAST_SPAN), end)["predictions"]
        except ApiProblem as exc:
            return problem(exc.message, keep=True)
        latest, note = None, ""
        if end > last:  # the newest forecast starts from the newest candle: drawn when it is in range
            try:
                latest = api.latest(symbol)
            except ApiProblem as exc:
                note = exc.message
        xrange = None if view.follow else (start, end)
        fig = figures.price_figure(symbol, view.key(), candles, past, latest, xrange)
        fig.update_layout(meta={"last": last.isoformat()})  # the newest candle, for DRAW_CHART_JS
        return answer(fig), note

    app.clientside_callback(
        DRAW_CHART_JS,
        Output("price-chart", "figure"),
        Input("chart-answer", "data"),
        State("stamp", "data"),
        State("view", "data"),
        State("price-chart", "figure"),
    )

    @app.callback(
        Output("replay-banner", "children"),
        Output("replay-banner", "title"),
        Output("replay-banner", "hidden"),
        Output("system", "children"),
        Input("slow-tick", "n_intervals"),
    )
    def system(_: int | None) -> tuple:
        """The banner and the status table: ``/health`` and ``/status`` (every pair in one query)."""
        try:
            health = api.health()
            status = api.status()
        except ApiProblem as exc:
            return no_update, no_update, no_update, exc.message
        table = panels.system_panel(status["pairs"])
        if not panels.is_replay(health):
            return [], "", True, table
        line, details = panels.replay_banner(health, status["exchange_time"])
        return line, details, False, table

    @app.callback(
        Output("accuracy", "children"),
        Output("training", "children"),
        Output("book-chart", "figure"),
        Input("slow-tick", "n_intervals"),
        Input("pair", "value"),
        Input("view", "data"),
    )
    def pair_panels(_: int | None, symbol: str | None, stored: object) -> tuple:
        if not symbol:
            return NO_PAIR, NO_PAIR, figures.message_figure(NO_PAIR, figures.BOOK_HEIGHT)
        try:
            detail = api.pair(symbol)
        except ApiProblem as exc:
            return exc.message, exc.message, figures.message_figure(exc.message, figures.BOOK_HEIGHT)
        accuracy, plan = panels.accuracy_panel(detail), training.training_panel(detail["training"])
        last = detail["freshness"]["last_candle_time"]
        if last is None:
            return accuracy, plan, figures.message_figure(f"{symbol}: no data yet", figures.BOOK_HEIGHT)
        start, end = ranges.from_store(stored, DEFAULT_VIEW).window(datetime.fromisoformat(last))
        try:
            book = figures.book_figure(symbol, api.top_of_book(symbol, start, end), (start, end))
        except ApiProblem as exc:
            book = figures.message_figure(exc.message, figures.BOOK_HEIGHT)
        return accuracy, plan, book

    @app.callback(
        Output("calibration", "children"),
        Output("calibration-chart", "figure"),
        Input("slow-tick", "n_intervals"),
        Input("pair", "value"),
    )
    def calibration(_: int | None, symbol: str | None) -> tuple:
        if not symbol:
            return NO_PAIR, figures.message_figure(NO_PAIR, figures.CALIBRATION_HEIGHT)
        try:
            answer = api.scores(symbol)
        except ApiProblem as exc:
            return exc.message, figures.message_figure(exc.message, figures.CALIBRATION_HEIGHT)
        return panels.calibration_panel(answer), figures.calibration_figure(symbol, answer)

    @app.callback(Output("models", "children"), Input("slow-tick", "n_intervals"), Input("pair", "value"))
    def models(_: int | None, symbol: str | None) -> object:
        if not symbol:
            return NO_PAIR
        try:
            return training.models_table(api.models(symbol))
        except ApiProblem as exc:
            return exc.message

    @app.callback(
        Output("retrain-message", "children"),
        Output("following", "data"),
        Input("retrain", "n_clicks"),
        Input("slow-tick", "n_intervals"),
        State("pair", "value"),
        State("following", "data"),
        prevent_initial_call=True,
    )
    def retrain(_click: int | None, _tick: int | None, symbol: str | None, following: object) -> tuple:
        """*Retrain now* queues one; then its command is followed each tick until it is done or failed."""
        if ctx.triggered_id == "retrain":
            return _request_retrain(api, symbol, session.viewer_token(sessions))
        if not _is_command_id(following):
            raise PreventUpdate
        return _follow(api, following)


def _stamp(value: object) -> dict:
    """The page's stamp in the shape ``poll`` writes it, with ``last`` as a time; what does not fit is
    dropped (the stamp comes back from the browser)."""
    if not isinstance(value, dict):
        return {}
    stamp: dict = {"symbol": value.get("symbol") if is_symbol(value.get("symbol")) else None}
    for key in ("status", "error"):
        if isinstance(value.get(key), str):
            stamp[key] = value[key][:MAX_SHOWN_ERROR]
    try:
        stamp["last"] = datetime.fromisoformat(value["last"])
    except (KeyError, TypeError, ValueError):
        stamp["last"] = None
    return stamp


def _changed(stamp: dict, shown: dict | None) -> dict | NoUpdate:
    """``stamp``, or no update when the page has it already (Dash would re-run the chart anyway)."""
    return no_update if stamp == shown else stamp


def _latest_origin(api: ApiClient, symbol: str) -> str | None:
    try:
        return api.latest(symbol)["origin_time"]
    except ApiProblem:
        return None


def _request_retrain(api: ApiClient, symbol: object, token: str | None) -> tuple:
    """The line to show and the command to follow: the new one, or on 409 the training already open.
    ``token`` is the signed-in viewer's (None: sent without one)."""
    if not symbol:
        return NO_PAIR, None
    try:
        answer = api.retrain(checked_symbol(symbol), token)
    except ApiProblem as exc:
        already = exc.body.get("command") or {}
        return refusal(exc, token, "retrain"), already.get("id")
    return training.retrain_accepted(answer), answer["command_id"]


def _is_command_id(value: object) -> TypeGuard[int]:
    """Whether the browser's stored value is a command id (it comes back from the page: not trusted)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COMMAND_ID


def _follow(api: ApiClient, command_id: int) -> tuple:
    """The command's status line; it is followed while open, and while the API does not answer."""
    try:
        view = api.command(command_id)
    except ApiProblem as exc:
        return exc.message, None if exc.status == 404 else command_id
    return training.command_status(view), command_id if view["status"] in OPEN_STATUSES else None


def _progress(api: ApiClient, pending: str | None, rows: dict[str, dict]) -> str:
    if not pending:
        return ""
    row = rows.get(pending)
    detail = None
    if row is not None and row["status"] == "live":
        try:
            detail = api.pair(pending)
        except ApiProblem:
            detail = None
    return panels.pair_progress(pending, row, detail)
