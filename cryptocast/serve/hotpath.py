"""Fresh cached answers sent before FastAPI: no routing, no dependencies, no middleware stack.

The latest forecast and pages of candles are the most polled answers, and their data are kept
until news of the pair ends them (``hotreads``: at most half a second), their lag renewed every
exchange second (``encoded.Renewing``). On Serve, FastAPI's routing, parameter handling and
middleware cost more than the rest of a request: a FastAPI ingress whose one route does nothing
reaches only 0.3-0.7x the requests/s of a bare Serve callable (``bench/serve.py``, direct ingress).
So while a cached answer is fresh, a ``GET`` of exactly its path and query string is answered
here, with the bytes and headers the route itself would send (ETag, 304, gzip) and counted in the
same metrics. A route opts in by putting its answer here; everything else goes through FastAPI: a
miss, an expired or dropped entry, any other query string, an ``Origin`` header (CORS must see it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from cryptocast.serve import metrics
from cryptocast.serve.encoded import GZIP_MIN_BYTES, MEDIA_TYPE, Encoded, choose

log = logging.getLogger(__name__)

MAX_ENTRIES = 256
Renew = Callable[[], Coroutine[Any, Any, object]]


class Answer(Protocol):
    def current(self) -> Encoded: ...  # an Encoded, or a Renewing one whose clock fields move on


@dataclass(frozen=True, slots=True)
class HotAnswer:
    answer: Answer
    route: str  # the route's template, the metrics label
    expires: float  # fresh until (time.monotonic())
    tag: str  # what news ends it (a pair's symbol)
    renew: Renew | None  # fills the entry again (the route, run for the same request)
    grace: float  # while renewed in the background, it is still sent until then


def request_key(scope: Scope) -> str:
    """A request's path and query string, as sent."""
    query = scope.get("query_string")
    return scope["path"] + "?" + query.decode("latin-1") if query else scope["path"]


class HotAnswers:
    """Answers by exact path and query string, each until ``expires``; bounded like the caches.

    An entry that can be renewed is renewed in the background by the first request after it
    expires, and sent meanwhile (until ``grace``): otherwise every request of the renewal's
    duration, tens of ms on a saturated event loop, would take the slow way through FastAPI.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: dict[str, HotAnswer] = {}
        self.renewing: dict[str, asyncio.Task] = {}

    def put(
        self,
        scope: Scope,
        answer: Answer,
        expires: float,
        tag: str = "",
        renew: Renew | None = None,
        grace: float = 0.0,
    ) -> None:
        """Send ``answer`` for requests like the one of ``scope`` (a routed request) until ``expires``
        (with ``renew``, until ``grace`` while it runs) or until the entries of ``tag`` are dropped."""
        key = request_key(scope)
        if key not in self.entries and len(self.entries) >= self.max_entries:
            now = time.monotonic()
            for old in [k for k, hot in self.entries.items() if hot.expires <= now]:
                del self.entries[old]
            if len(self.entries) >= self.max_entries:
                del self.entries[next(iter(self.entries))]
        self.entries[key] = HotAnswer(answer, scope["route"].path, expires, tag, renew, max(grace, expires))

    def drop(self, tag: str | None) -> None:
        """End the entries of ``tag`` (None: every entry)."""
        for key in [k for k, hot in self.entries.items() if tag is None or hot.tag == tag]:
            del self.entries[key]

    def get(self, scope: Scope) -> HotAnswer | None:
        key = request_key(scope)
        hot = self.entries.get(key)
        if hot is None:
            return None
        now = time.monotonic()
        if hot.expires > now:
            return hot
        if hot.renew is None or hot.grace <= now:
            return None
        if key not in self.renewing:
            task = asyncio.get_running_loop().create_task(hot.renew())
            task.add_done_callback(lambda done: self._renewed(key, done))
            self.renewing[key] = task
        return hot

    def _renewed(self, key: str, task: asyncio.Task) -> None:
        del self.renewing[key]
        if not task.cancelled() and task.exception() is not None:  # FastAPI answers the next one (the error)
            self.entries.pop(key, None)
            log.warning("renewing %s failed: %r", key, task.exception())


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class HotApi(FastAPI):
    """FastAPI that answers a fresh entry of ``hot`` itself; routes fill it (see the module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot = HotAnswers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            hot = self.hot.get(scope)
            if hot is not None and _header(scope, b"origin") is None:
                await self._send(hot, scope, send)
                return
        await super().__call__(scope, receive, send)

    @staticmethod
    async def _send(hot: HotAnswer, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        accept = _header(scope, b"accept-encoding") or ""
        status, headers, body = choose(hot.answer.current(), _header(scope, b"if-none-match"), accept)
        if (
            status == 200
            and "content-encoding" not in {k.lower() for k in headers}
            and len(body) >= GZIP_MIN_BYTES
        ):
            headers["Vary"] = "Accept-Encoding"  # as the gzip middleware marks an answer it could compress
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if status == 200:
            raw += [(b"content-length", str(len(body)).encode()), (b"content-type", MEDIA_TYPE.encode())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        metrics.observe(hot.route, status, time.perf_counter() - started)
