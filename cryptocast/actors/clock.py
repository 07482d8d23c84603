"""The exchange's clock as seen from an actor: offset and rate from the exchange's own ``/time``.

Candle timing, watchdogs and lag follow the exchange clock. On Binance it runs at wall speed; on
the replay it may run N× faster, so the rate is measured, not configured: nothing in ingestion
knows it talks to a replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

RATE_SAMPLE_S = 0.5  # wall gap between the two /time samples that give the rate
UNIT_RATE_TOLERANCE = 0.05  # a measured rate this close to 1 is the wall clock plus jitter


@dataclass
class ExchangeClock:
    wall_anchor: float = 0.0
    exchange_anchor_ms: float = 0.0
    rate: float = 1.0

    @classmethod
    async def measure(cls, server_time: Callable[[], Awaitable[int]]) -> ExchangeClock:
        """Two timed samples of the exchange's time; the rate is exchange ms per wall ms."""
        first = await cls._sample(server_time)
        await asyncio.sleep(RATE_SAMPLE_S)
        second = await cls._sample(server_time)
        rate = (second[1] - first[1]) / ((second[0] - first[0]) * 1000.0)
        if abs(rate - 1.0) < UNIT_RATE_TOLERANCE or rate <= 0:
            rate = 1.0
        return cls(second[0], second[1], rate)

    @staticmethod
    async def _sample(server_time: Callable[[], Awaitable[int]]) -> tuple[float, float]:
        before = time.time()
        server_ms = await server_time()
        return (before + time.time()) / 2, float(server_ms)

    def now_ms(self) -> int:
        return int(self.exchange_anchor_ms + (time.time() - self.wall_anchor) * 1000.0 * self.rate)

    def wall_seconds(self, exchange_ms: float) -> float:
        """How long an exchange-time span lasts in wall seconds."""
        return exchange_ms / self.rate / 1000.0

    def wall_at(self, exchange_ms: float) -> float:
        """Wall time (epoch seconds) at which the exchange clock shows ``exchange_ms``."""
        return self.wall_anchor + (exchange_ms - self.exchange_anchor_ms) / self.rate / 1000.0
