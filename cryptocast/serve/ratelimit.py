"""A write rate per client address: requests that change state are bounded, reads are not.

Every add, remove, purge, retrain and rollback becomes a command row that ingestion or training
carries out, so one client could fill the command queue (or try tokens) as fast as it can send.
Each client address gets a token bucket: ``burst`` writes at once, refilled at ``per_minute``;
past it, 429 with ``Retry-After``. The table of clients is bounded: past ``MAX_CLIENTS`` the one
seen least recently goes (a client forgotten starts again with a full bucket, which is what a
client idle that long would have anyway). The address is the connection's (``scope["client"]``);
behind a proxy that is the proxy's, so every client behind it shares one bucket. On-demand
forecasts are sent by ``POST`` only to carry their window: they change nothing and are not
limited here.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from fastapi import HTTPException, Request

from cryptocast.settings import get_settings

MAX_CLIENTS = 10_000
UNKNOWN_CLIENT = "unknown"  # a transport that does not say who connected: those share one bucket


class WriteRate:
    """Token buckets by client: ``take`` answers 0 (go) or the seconds until a write is allowed."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_s = per_minute / 60.0
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when counted

    def take(self, client: str) -> float:
        now = self.clock()
        tokens, then = self.buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_s
        self.buckets[client] = (tokens - 1.0 if not wait else tokens, now)
        if len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait


@lru_cache(maxsize=1)
def write_rate() -> WriteRate:
    """The process's buckets, sized by the settings."""
    settings = get_settings()
    return WriteRate(settings.api_write_burst, settings.api_writes_per_minute)


def limit_writes(request: Request) -> None:
    """FastAPI dependency of every route that changes state: within the client's rate, or 429."""
    client = request.client.host if request.client is not None else UNKNOWN_CLIENT
    wait = write_rate().take(client)
    if wait:
        rate = write_rate()
        retry = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"too many writes from {client}: at most {rate.burst} at once and {rate.per_s * 60:g} a minute; "
            f"retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
