"""The budget for REST weight and new connections of one egress IP, shared by its pairs.

Binance counts request weight per wall-clock minute and per IP (6000 by default), and new
websocket connections per 5 minutes (300). Every pair asks this budget before a request, so that
together they stay under the limit; the budget also learns from ``X-MBX-USED-WEIGHT-1M`` (other
clients on the same IP spend weight too) and honours ``Retry-After``: after a 429 every pair
waits, so a 429 never turns into a 418 ban. Rate limits follow the wall clock, even on a replay.

Live work comes first: backfill pages may spend only ``BACKFILL_SHARE`` of a minute, so the
reconciliation, repair and clock calls that keep live pairs whole always find weight left, however
many pairs are backfilling at once. One budget runs per node (each node is one egress IP).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WEIGHT_LIMIT_PER_MINUTE = 6000
# Requests are counted before they are sent, so the headroom only covers other clients on the IP
# and clock skew at the minute boundary.
SAFETY = 0.95
# Of the usable minute, what backfill pages may take; the rest is kept for live pairs' calls.
BACKFILL_SHARE = 0.8
CONNECTIONS_PER_WINDOW = 300
CONNECTION_WINDOW_S = 300.0
MINUTE_S = 60.0


@dataclass
class RateBudget:
    """Decides how long a caller must wait before spending weight or opening a connection."""

    weight_limit: int = WEIGHT_LIMIT_PER_MINUTE
    connection_limit: int = CONNECTIONS_PER_WINDOW
    clock: Callable[[], float] = field(default=time.time, repr=False)
    _minute: int = -1
    _used: int = 0
    _blocked_until: float = 0.0
    _connections: deque[float] = field(default_factory=deque)
    penalties: int = 0
    weight_spent: int = 0  # every reservation since the start, for weight-per-minute reports
    connections_opened: int = 0

    def _roll(self, now: float) -> None:
        minute = int(now // MINUTE_S)
        if minute != self._minute:
            self._minute, self._used = minute, 0

    def reserve(self, weight: int, backfill: bool = False) -> float:
        """Reserve ``weight`` now and return 0, or return the seconds to wait before asking again.

        A ``backfill`` call stops at ``BACKFILL_SHARE`` of the usable minute; live calls may use all of it.
        """
        now = self.clock()
        if now < self._blocked_until:
            return self._blocked_until - now
        self._roll(now)
        usable = self.weight_limit * SAFETY * (BACKFILL_SHARE if backfill else 1.0)
        if self._used + weight > usable:
            return (self._minute + 1) * MINUTE_S - now + 0.05
        self._used += weight
        self.weight_spent += weight
        return 0.0

    def observe(self, used_weight: int | None) -> None:
        """Learn the exchange's own count for this minute (it includes other clients on the IP)."""
        if used_weight is None:
            return
        self._roll(self.clock())
        self._used = max(self._used, used_weight)

    def penalize(self, retry_after_s: float) -> None:
        """A 429 or 418 arrived: nobody sends until ``Retry-After`` has passed."""
        self.penalties += 1
        self._blocked_until = max(self._blocked_until, self.clock() + max(retry_after_s, 1.0))

    def reserve_connection(self) -> float:
        """Reserve one new connection, or return the seconds until one frees up."""
        now = self.clock()
        while self._connections and now - self._connections[0] >= CONNECTION_WINDOW_S:
            self._connections.popleft()
        if len(self._connections) >= self.connection_limit:
            return CONNECTION_WINDOW_S - (now - self._connections[0]) + 0.05
        self._connections.append(now)
        self.connections_opened += 1
        return 0.0

    def snapshot(self) -> dict:
        now = self.clock()
        self._roll(now)
        return {
            "weight_used": self._used,
            "weight_limit": self.weight_limit,
            "blocked_for_s": max(0.0, self._blocked_until - now),
            "connections_in_window": len(self._connections),
            "penalties": self.penalties,
            "weight_spent": self.weight_spent,
            "connections_opened": self.connections_opened,
        }


class LocalBudget:
    """The budget for a single process (tests, one-off tools): same rules, no actor."""

    def __init__(self, budget: RateBudget | None = None) -> None:
        self.budget = budget or RateBudget()

    async def reserve(self, weight: int, backfill: bool = False) -> float:
        return self.budget.reserve(weight, backfill)

    async def observe(self, used_weight: int | None) -> None:
        self.budget.observe(used_weight)

    async def penalize(self, retry_after_s: float) -> None:
        self.budget.penalize(retry_after_s)

    async def reserve_connection(self) -> float:
        return self.budget.reserve_connection()
