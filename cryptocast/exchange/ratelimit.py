"""Request weight accounting per client address, on the wall clock, as Binance does it.

Each wall-clock minute a client may spend ``limit`` weight. Past it, requests get HTTP 429 with
``Retry-After`` (seconds to the next minute). A client that keeps sending while limited is banned
(HTTP 418 with ``Retry-After``); repeat bans double in length, up to three days.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptocast.exchange.clock import wall_ms

DEFAULT_WEIGHT_LIMIT = 6000
WINDOW_MS = 60_000
LIMITED_ANSWERS_BEFORE_BAN = 5  # 429s a client may collect before the next request is banned
FIRST_BAN_S = 120
LONGEST_BAN_S = 3 * 24 * 3600


@dataclass(slots=True)
class Verdict:
    """The outcome for one request: ``status`` 200 (go ahead), 429 or 418, and the headers' values."""

    status: int
    used_weight: int
    retry_after_s: int = 0


@dataclass(slots=True)
class _Client:
    window: int = -1
    used: int = 0
    limited_requests: int = 0
    banned_until_ms: int = 0
    bans: int = 0


@dataclass
class WeightLimiter:
    limit: int = DEFAULT_WEIGHT_LIMIT
    first_ban_s: int = FIRST_BAN_S
    wall: Callable[[], int] = wall_ms
    storm_until_ms: int = 0  # fault: every request is limited (429) until then
    ban_all_until_ms: int = 0  # fault: every client is banned (418) until then
    _clients: dict[str, _Client] = field(default_factory=dict)

    def _client(self, address: str, now: int) -> _Client:
        client = self._clients.setdefault(address, _Client())
        window = now // WINDOW_MS
        if client.window != window:
            client.window, client.used = window, 0
            if now >= client.banned_until_ms:
                client.limited_requests = 0
        return client

    def _retry_after(self, now: int, until_ms: int) -> int:
        return max(1, math.ceil((until_ms - now) / 1000))

    def charge(self, address: str, weight: int) -> Verdict:
        now = self.wall()
        client = self._client(address, now)
        banned_until = max(client.banned_until_ms, self.ban_all_until_ms)
        if now < banned_until:
            return Verdict(418, client.used, self._retry_after(now, banned_until))
        storming = now < self.storm_until_ms
        if not storming and client.used + weight <= self.limit:
            client.used += weight
            client.limited_requests = 0
            return Verdict(200, client.used)
        client.limited_requests += 1
        if client.limited_requests > LIMITED_ANSWERS_BEFORE_BAN:
            return self.ban(address, now)
        limited_until = self.storm_until_ms if storming else (now // WINDOW_MS + 1) * WINDOW_MS
        return Verdict(429, client.used, self._retry_after(now, limited_until))

    def ban(self, address: str, now: int) -> Verdict:
        client = self._client(address, now)
        seconds = min(LONGEST_BAN_S, self.first_ban_s * 2**client.bans)
        client.bans += 1
        client.banned_until_ms = now + seconds * 1000
        client.limited_requests = 0
        return Verdict(418, client.used, seconds)

    def forgive(self) -> None:
        """Lift every ban and limit (admin: clearing faults)."""
        self._clients.clear()
        self.storm_until_ms = self.ban_all_until_ms = 0
