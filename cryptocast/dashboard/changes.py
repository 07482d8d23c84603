"""The page's changes: signing in and out, and adding, removing or deleting a pair with the viewer's token.

A change is sent with the token of the viewer who signed in (held on the server under their session
cookie), or with none when they did not: an API in dev mode without a token accepts it, any other
answers 401, read here as the sentence that asks for a sign-in. Removing waits for the browser's
confirm dialog; deleting a pair with its data is its own control and sends nothing until the
selected pair's symbol is typed, which then goes to the API as ``confirm``. The selected pair comes
back from the browser, so it is checked before anything is asked or sent.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, no_update

from cryptocast.dashboard import panels, session
from cryptocast.dashboard.client import ApiClient, ApiProblem, checked_symbol
from cryptocast.dashboard.layout import NO_PAIR
from cryptocast.dashboard.session import SessionStore

SIGNED_IN = "Signed in: changes are sent with your API token."
SIGNED_OUT = "Not signed in: reading needs no token, changes need yours."
SIGN_IN_FIRST = "Sign in with an API token to {action}."


def refusal(exc: ApiProblem, token: str | None, action: str) -> str:
    """The sentence for a refused change: a sign-in when none was made and the API wants one, else
    the API's own message (a wrong token's 401 included)."""
    return SIGN_IN_FIRST.format(action=action) if exc.status == 401 and token is None else exc.message


def _outputs(
    pending: object = no_update,
    message: object = no_update,
    new_pair: object = no_update,
    ask: object = no_update,
    question: object = no_update,
    typed: object = no_update,
    progress: object = no_update,
) -> tuple:
    """The pair-change callback's outputs, each left as it is unless named."""
    return pending, message, new_pair, ask, question, typed, progress


def register_changes(app: Dash, api: ApiClient, sessions: SessionStore) -> None:
    @app.callback(
        Output("auth-status", "children"),
        Output("token", "value"),
        Output("sign-out", "hidden"),
        Input("sign-in", "n_clicks"),
        Input("token", "n_submit"),
        Input("sign-out", "n_clicks"),
        State("token", "value"),
    )
    def auth(_sign_in: int | None, _submit: int | None, _sign_out: int | None, text: object) -> tuple:
        """The sign-in state on load; a sign-in or sign-out when asked. The field is always cleared."""
        if ctx.triggered_id == "sign-out":
            session.sign_out(sessions)
            return SIGNED_OUT, "", True
        if ctx.triggered_id in ("sign-in", "token"):
            problem = session.token_problem(text)
            if problem is not None:
                return problem, "", no_update
            session.sign_in(sessions, str(text).strip())
            return SIGNED_IN, "", False
        signed_in = session.viewer_token(sessions) is not None
        return (SIGNED_IN if signed_in else SIGNED_OUT), no_update, not signed_in

    @app.callback(
        Output("pending", "data"),
        Output("pair-message", "children"),
        Output("new-pair", "value"),
        Output("confirm-remove", "displayed"),
        Output("confirm-remove", "message"),
        Output("purge-symbol", "value"),
        Output("pair-progress", "children", allow_duplicate=True),
        Input("add-pair", "n_clicks"),
        Input("new-pair", "n_submit"),
        Input("remove-pair", "n_clicks"),
        Input("confirm-remove", "submit_n_clicks"),
        Input("purge-pair", "n_clicks"),
        State("new-pair", "value"),
        State("pair", "value"),
        State("purge-symbol", "value"),
        prevent_initial_call=True,
    )
    def change_pairs(
        _adds: int | None,
        _submits: int | None,
        _asks: int | None,
        _confirms: int | None,
        _purges: int | None,
        text: object,
        selected: object,
        typed: object,
    ) -> tuple:
        token = session.viewer_token(sessions)
        try:
            if ctx.triggered_id == "remove-pair":
                return _ask_removal(selected)
            if ctx.triggered_id == "confirm-remove":
                return _remove(api, selected, token)
            if ctx.triggered_id == "purge-pair":
                return _purge(api, selected, typed, token)
            return _add(api, text, token)
        except ApiProblem as exc:
            return _outputs(message=refusal(exc, token, "change pairs"))


def _ask_removal(selected: object) -> tuple:
    if not selected:
        return _outputs(message=NO_PAIR)
    symbol = checked_symbol(selected)
    question = f"Remove {symbol}? Its ingestion stops and its data is kept (deleting it is a separate step)."
    return _outputs(message="", ask=True, question=question)


def _remove(api: ApiClient, selected: object, token: str | None) -> tuple:
    if not selected:
        return _outputs(message=NO_PAIR)
    answer = api.remove_pair(checked_symbol(selected), token)
    return _outputs(message=f"{answer['symbol']}: removal requested (its data is kept).")


def _purge(api: ApiClient, selected: object, typed: object, token: str | None) -> tuple:
    if not selected:
        return _outputs(message=NO_PAIR)
    symbol = checked_symbol(selected)
    confirm = typed.strip().upper() if isinstance(typed, str) else ""
    if confirm != symbol:
        return _outputs(message=f"Type {symbol} in the box to delete it and its data; nothing was sent.")
    answer = api.purge_pair(symbol, confirm, token)
    return _outputs(message=f"{answer['symbol']}: removal requested, and its data will be deleted.", typed="")


def _add(api: ApiClient, text: object, token: str | None) -> tuple:
    """Ask for a pair; the progress line says so at once (the 1 s poll takes it from there: a short
    backfill can be over before that poll, and the viewer still sees that the pair was asked for)."""
    answer = api.add_pair(text.strip() if isinstance(text, str) else "", token)
    symbol = answer["symbol"]
    return _outputs(
        pending=symbol, message="", new_pair="", progress=panels.pair_progress(symbol, None, None)
    )
