"""The dashboard's only way to the data: the HTTP API, with its errors turned into sentences.

Every panel shows ``ApiProblem.message`` instead of a blank figure, so a stopped API or a pair
that is still backfilling (409) reads as a message the user can act on. A pair symbol comes from the
browser, so it is checked against the pair pattern and quoted as one path segment before any
request is built with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

import httpx

from cryptocast.actors.commands import SYMBOL_PATTERN

REQUEST_TIMEOUT_S = 10.0
MAX_PAGE = 10_000  # the API's largest ``limit``


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

    def __init__(self, api_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = api_url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S, headers=headers)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            reply = self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise ApiProblem(f"the API at {self.url} is not reachable ({type(exc).__name__})") from None
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

    def candles(self, symbol: str, start: datetime) -> dict:
        """Every candle from ``start`` on, following ``next_start`` (a week is more than one page)."""
        path = pair_path("/pairs", symbol, "candles")
        body = self.get(path, start=start.isoformat(), limit=MAX_PAGE)
        rows = body["candles"]
        while body["next_start"]:
            body = self.get(path, start=body["next_start"], limit=MAX_PAGE)
            rows.extend(body["candles"])
        return body | {"candles": rows}

    def top_of_book(self, symbol: str, start: datetime) -> dict:
        return self.get(pair_path("/pairs", symbol, "top-of-book"), start=start.isoformat(), limit=MAX_PAGE)

    def predictions(self, symbol: str, start: datetime) -> dict:
        return self.get(pair_path("/pairs", symbol, "predictions"), start=start.isoformat(), limit=MAX_PAGE)

    def latest(self, symbol: str) -> dict:
        return self.get(pair_path("/pairs", symbol, "predictions/latest"))

    def models(self, symbol: str) -> dict:
        return self.get(pair_path("/models", symbol))

    def command(self, command_id: int) -> dict:
        """One command's view: status, progress while running, result or the reason it failed."""
        return self.get(f"/commands/{command_id:d}")

    # --- changes ---------------------------------------------------------------------------------
    def add_pair(self, symbol: str) -> dict:
        return self._send("POST", "/pairs", json={"symbol": symbol}).json()

    def remove_pair(self, symbol: str) -> dict:
        return self._send("DELETE", pair_path("/pairs", symbol)).json()

    def retrain(self, symbol: str) -> dict:
        """Queue a retrain: the command's view with ``command_id`` and the scheduler's state (202)."""
        return self._send("POST", pair_path("/pairs", symbol, "retrain")).json()


def pair_path(prefix: str, symbol: object, rest: str = "") -> str:
    """``prefix/SYMBOL[/rest]`` with the symbol as one quoted segment; :class:`ApiProblem` when it is
    not a pair symbol (a dot segment or a slash would otherwise reach another route)."""
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.fullmatch(symbol):
        raise ApiProblem(
            f"'{str(symbol)[:40]}' is not a pair symbol: expected 2-32 capital letters, digits or _"
        )
    return f"{prefix}/{quote(symbol, safe='')}" + (f"/{rest}" if rest else "")


def window_start(last_candle: datetime, window: timedelta) -> datetime:
    """Start of a chart window that ends at the newest candle (inclusive)."""
    return last_candle - window + timedelta(minutes=1)
