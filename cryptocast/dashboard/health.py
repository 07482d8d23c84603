"""``GET /healthz``: the dashboard's readiness (what a Kubernetes probe asks), cheap and with nothing
secret in it.

The dashboard can serve as soon as its process answers: an API that is away is shown on the page as
a message, so it does not make the dashboard unready. Whether the API answered is reported beside
it, probed with a short timeout at most once per ``API_CHECK_TTL_S``, so frequent probes never pile
up on the API; the answer names no URL and no token.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import flask
import httpx

HEALTH_PATH = "/healthz"
API_CHECK_TIMEOUT_S = 1.0
API_CHECK_TTL_S = 5.0


class ApiCheck:
    """Whether ``GET {api}/health`` answered (any status: a degraded API still answers), cached."""

    def __init__(self, api_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = api_url.rstrip("/") + "/health"
        self.clock = clock
        self._lock = threading.Lock()
        self._checked_at = -math.inf
        self._answered = False

    def answered(self) -> bool:
        with self._lock:  # one probe at a time; probes arriving meanwhile take its answer
            if self.clock() - self._checked_at >= API_CHECK_TTL_S:
                self._answered = self._probe()
                self._checked_at = self.clock()
            return self._answered

    def _probe(self) -> bool:
        try:
            httpx.get(self.url, timeout=API_CHECK_TIMEOUT_S)
        except httpx.HTTPError:
            return False
        return True


def install(server: flask.Flask, api_url: str) -> None:
    """Answer ``GET /healthz`` on the dashboard's Flask server: 200 ``{"status": "ok", "api": ...}``."""
    check = ApiCheck(api_url)

    @server.get(HEALTH_PATH)
    def healthz() -> flask.Response:
        return flask.jsonify(status="ok", api="answering" if check.answered() else "not answering")
