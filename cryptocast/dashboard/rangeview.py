"""Choosing the shown range (presets, follow live, a typed range) and downloading the pair over it.

A preset (1 h … 1 w) follows live over its length; *follow live* on keeps the current length and
slides it with new candles, off freezes the range on screen; *Show range* shows the typed range and
turns following off. The choice is the ``view`` store that the chart and the top-of-book panel read.

*Download CSV* asks the API for the shown pair's candles, forecasts or top of book over the shown
range as CSV (``GET /pairs/{symbol}/{what}?format=csv``); the dashboard's server fetches it and
hands the file to the browser, so the browser needs no API token and never calls the API itself.
"""

from __future__ import annotations

from datetime import datetime

from dash import Dash, Input, Output, State, ctx, dcc, no_update
from dash.exceptions import PreventUpdate

from cryptocast.dashboard import ranges
from cryptocast.dashboard.client import EXPORTS, ApiClient, ApiProblem, checked_symbol
from cryptocast.dashboard.layout import DEFAULT_WINDOW, FOLLOW, NO_PAIR, WINDOWS

DEFAULT_VIEW = ranges.live(WINDOWS[DEFAULT_WINDOW])
PRESETS = {minutes: name for name, minutes in WINDOWS.items()}


def _last(stamp: object) -> datetime | None:
    """The newest candle's time in the page's stamp (from the browser: None when it is not one)."""
    value = stamp.get("last") if isinstance(stamp, dict) else None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def _range_outputs(view: ranges.View, last: datetime | None) -> tuple:
    """The store, the toggle, the preset matching the length (none for a picked range), no message,
    and the inputs filled with the range on screen (left alone while its end is unknown)."""
    preset = PRESETS.get(view.minutes) if view.follow else None
    shown: tuple = (no_update, no_update)
    if last is not None:
        shown = tuple(ranges.shown(t) for t in view.window(last))
    elif view.start is not None and view.end is not None:
        shown = (ranges.shown(view.start), ranges.shown(view.end))
    return ranges.to_store(view), [FOLLOW] if view.follow else [], preset, "", *shown


def register_range(app: Dash, api: ApiClient) -> None:
    @app.callback(
        Output("view", "data"),
        Output("follow", "value"),
        Output("window", "value"),
        Output("range-message", "children"),
        Output("range-start", "value"),
        Output("range-end", "value"),
        Input("window", "value"),
        Input("follow", "value"),
        Input("show-range", "n_clicks"),
        Input("range-start", "n_submit"),
        Input("range-end", "n_submit"),
        State("range-start", "value"),
        State("range-end", "value"),
        State("view", "data"),
        State("stamp", "data"),
        prevent_initial_call=True,
    )
    def choose_range(
        preset: object,
        follow: object,
        _shows: int | None,
        _start_submits: int | None,
        _end_submits: int | None,
        start_text: object,
        end_text: object,
        stored: object,
        stamp: object,
    ) -> tuple:
        last = _last(stamp)
        current = ranges.from_store(stored, DEFAULT_VIEW)
        if ctx.triggered_id == "window":
            if not isinstance(preset, str) or preset not in WINDOWS:
                raise PreventUpdate  # cleared by a picked range, or not a preset
            return _range_outputs(ranges.live(WINDOWS[preset]), last)
        if ctx.triggered_id == "follow":
            if isinstance(follow, list) and FOLLOW in follow:
                return _range_outputs(ranges.live(current.minutes), last)
            if last is None:
                raise PreventUpdate
            return _range_outputs(ranges.fixed(*current.window(last)), last)
        try:
            return _range_outputs(ranges.picked(start_text, end_text), last)
        except ranges.RangeProblem as exc:
            return no_update, no_update, no_update, str(exc), no_update, no_update

    @app.callback(
        Output("download-file", "data"),
        Output("range-message", "children", allow_duplicate=True),
        Input("download", "n_clicks"),
        State("pair", "value"),
        State("export-kind", "value"),
        State("view", "data"),
        State("stamp", "data"),
        prevent_initial_call=True,
    )
    def download(_: int | None, selected: object, what: object, stored: object, stamp: object) -> tuple:
        """The shown pair's ``what`` over the shown range as a CSV file, fetched from the API here."""
        if not selected:
            return no_update, NO_PAIR
        if not isinstance(what, str) or what not in EXPORTS:
            return no_update, f"'{str(what)[:20]}' cannot be downloaded: one of {', '.join(EXPORTS)}."
        last = _last(stamp)
        view = ranges.from_store(stored, DEFAULT_VIEW)
        if last is not None:
            start, end = view.window(last)
        elif view.start is not None and view.end is not None:
            start, end = view.start, view.end
        else:
            return no_update, "No candles yet: nothing to download."
        try:
            symbol = checked_symbol(selected)
            text = api.export(symbol, what, start, end)
        except ApiProblem as exc:
            return no_update, exc.message
        name = f"{symbol}-{what}-{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.csv"
        return dcc.send_string(text, name, type="text/csv"), ""
