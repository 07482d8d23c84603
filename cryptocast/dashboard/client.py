"""The dashboard's only way to the data: the HTTP API, with its errors turned into sentences.

Every panel shows ``ApiProblem.message`` instead of a blank figure, so a stopped API or a pair
that is still backfilling (409) reads as a message the user can act on. A pair symbol comes from the
browser, so it is checked against the pair pattern and quoted as one path segment before any
request is built with it; query values go as httpx params, which quotes them.

The client holds no token: a change carries the token of the viewer who asked for it (their
session's, :mod:`cryptocast.dashboard.session`), or none, and the API decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeGuard
from urllib.parse import quote, urlsplit

import httpx

from cryptocast.actors.commands import SYMBOL_PATTERN

REQUEST_TIMEOUT_S = 10.0
MAX_PAGE = 10_000  # the API's largest ``limit``
EXPORTS = ("candles", "predictions", "top-of-book")  # what the API sends as CSV


class ApiProblem(RuntimeError):
    """An API answer that is not data: unreachable, an error body with its message, or a request
    refused before it was sent."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body or {}


class ApiClient:
    """Thin synchronous client (Dash callbacks run in worker threads)."""

    def __init__(self, api_url: str) -> None:
        self.url = api_url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            reply = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiProblem(
                f"the API at {shown_url(self.url)} is not reachable ({type(exc).__name__})"
            ) from None
        if reply.status_code >= 400:
            try:
                body = reply.json()
            except ValueError:
                body = {}
            message = body.get("message") or body.get("detail") or reply.text or reply.reason_phrase
            raise ApiProblem(str(message), reply.status_code, body)
        return reply

    def get(self, path: str, **params: object) -> dict:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._send("GET", path, params=clean).json()

    # --- reads -----------------------------------------------------------------------------------
    def health(self) -> dict:
        try:
            return self.get("/health")
        except ApiProblem as exc:
            if exc.status == 503 and exc.body:  # degraded health still describes the system
                return exc.body
            raise

    def pairs(self) -> list[dict]:
        return self.get("/pairs")["pairs"]

    def pair(self, symbol: str) -> dict:
        return self.get(pair_path("/pairs", symbol))

    def status(self) -> dict:
        """Every tracked pair's state, lag, completeness and restarts, read by the API in one query."""
        return self.get("/status")

    def _paged(self, symbol: str, what: str, start: datetime, end: datetime | None) -> dict:
        """Every row of ``what`` in [start, end), following ``next_start`` (a week is more than one page)."""
        path = pair_path("/pairs", symbol, what)
        until = end.isoformat() if end is not None else None
        body = self.get(path, start=start.isoformat(), end=until, limit=MAX_PAGE)
        key = what.replace("-", "_")
        rows = body[key]
        while body["next_start"]:
            body = self.get(path, start=body["next_start"], end=until, limit=MAX_PAGE)
            rows.extend(body[key])
        return body | {key: rows}

    def candles(self, symbol: str, start: datetime, end: datetime | None = None) -> dict:
        """Every candle in [start, end) (from ``start`` on when ``end`` is None)."""
        return self._paged(symbol, "candles", start, end)

    def top_of_book(self, symbol: str, start: datetime, end: datetime | None = None) -> dict:
        """Every minute's best bid and ask in [start, end)."""
        return self._paged(symbol, "top-of-book", start, end)

    def predictions(self, symbol: str, start: datetime, end: datetime | None = None) -> dict:
        end_text = end.isoformat() if end is not None else None
        return self.get(
            pair_path("/pairs", symbol, "predictions"), start=start.isoformat(), end=end_text, limit=MAX_PAGE
        )

    def export(self, symbol: str, what: str, start: datetime, end: datetime) -> str:
        """The API's CSV of ``what`` (one of ``EXPORTS``) in [start, end), as text."""
        if what not in EXPORTS:
            raise ApiProblem(f"'{what[:40]}' cannot be downloaded: one of {', '.join(EXPORTS)}")
        params = {"format": "csv", "start": start.isoformat(), "end": end.isoformat()}
        return self._send("GET", pair_path("/pairs", symbol, what), params=params).text

    def latest(self, symbol: str) -> dict:
        return self.get(pair_path("/pairs", symbol, "predictions/latest"))

    def scores(self, symbol: str) -> dict:
        """The served bands' live scores over the API's default window."""
        return self.get(pair_path("/pairs", symbol, "scores"))

    def models(self, symbol: str) -> dict:
        return self.get(pair_path("/models", symbol))

    def command(self, command_id: int) -> dict:
        """One command's view: status, progress while running, result or the reason it failed."""
        return self.get(f"/commands/{command_id:d}")

    # --- changes (with the viewer's token, or none) ---------------------------------------------
    def add_pair(self, text: str, token: str | None) -> dict:
        """Ask for a pair; the text goes in the JSON body and the API says what is wrong with it."""
        return self._send("POST", "/pairs", token, json={"symbol": text}).json()

    def remove_pair(self, symbol: str, token: str | None) -> dict:
        """Stop ingesting a pair; its data is kept (no ``purge`` is ever sent from here)."""
        return self._send("DELETE", pair_path("/pairs", symbol), token).json()

    def purge_pair(self, symbol: str, confirm: str, token: str | None) -> dict:
        """Stop a pair and delete its data: ``confirm`` is the symbol as the viewer typed it, which the
        API requires to equal the pair's."""
        return self._send(
            "DELETE", pair_path("/pairs", symbol), token, params={"purge": "true", "confirm": confirm}
        ).json()

    def retrain(self, symbol: str, token: str | None) -> dict:
        """Queue a retrain: the command's view with ``command_id`` and the scheduler's state (202)."""
        return self._send("POST", pair_path("/pairs", symbol, "retrain"), token).json()


def is_symbol(value: object) -> TypeGuard[str]:
    """Whether a value from the browser is a pair symbol (``^[A-Z0-9_]{2,32}$``)."""
    return isinstance(value, str) and SYMBOL_PATTERN.fullmatch(value) is not None


def checked_symbol(value: object) -> str:
    """``value`` when it is a pair symbol; :class:`ApiProblem` with a sentence otherwise."""
    if not is_symbol(value):
        raise ApiProblem(
            f"'{str(value)[:40]}' is not a pair symbol: expected 2-32 capital letters, digits or _"
        )
    return value


def pair_path(prefix: str, symbol: object, rest: str = "") -> str:
    """``prefix/SYMBOL[/rest]`` with the symbol as one quoted segment; :class:`ApiProblem` when it is
    not a pair symbol (a dot segment, a slash or a query would otherwise reach another route)."""
    return f"{prefix}/{quote(checked_symbol(symbol), safe='')}" + (f"/{rest}" if rest else "")


def shown_url(url: str) -> str:
    """``url`` as the page may show it: scheme, host, port and path, without user, password or query."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()
