"""The pair's end of the streams: its closed candles and quotes, from a hub that carries many pairs.

The pair does not hold a connection of its own: it asks a stream hub (``streamhub.py``, in this
process or in a stream actor) to carry its streams, and the hub hands over each closed candle with
the quote before it. The pair still watches: when it hears nothing for two candle intervals it asks
whether the hub still carries it, and if not (the hub died, restarted or dropped it) it asks again,
with a capped back-off, and repairs over REST what closed meanwhile. A hub that replaced a failed
connection says so (:class:`~cryptocast.actors.streamhub.Resumed`) and the pair repairs the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from cryptocast.actors.paircontext import INGEST_LOGGER, PairContext
from cryptocast.actors.rest_budgeted import backoff_s
from cryptocast.actors.streamhub import (
    MAX_BACKOFF_ATTEMPT,
    MIN_STALL_WALL_S,
    STALL_INTERVALS,
    Event,
    Renewed,
    Resumed,
    Sink,
)
from cryptocast.exchange.binance import BookQuote, KlineUpdate
from cryptocast.records import MINUTE_MS

log = logging.getLogger(INGEST_LOGGER)


class StreamSource(Protocol):
    """A stream hub as the pair sees it: in this process or behind a Ray actor."""

    async def add(self, symbol: str, sink: Sink) -> None: ...
    async def remove(self, symbol: str) -> None: ...
    async def carries(self, symbol: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Dropped:
    """The pair heard nothing and the hub no longer carries it: subscribe again, then repair."""

    reason: str


class StreamKeeper:
    """Keeps the pair carried by its hub and its events flowing into ``events``."""

    def __init__(self, ctx: PairContext, source: StreamSource) -> None:
        self.ctx = ctx
        self.source = source
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.failures = 0  # consecutive failures to be carried since the last closed candle
        self._heard = time.monotonic()

    async def _sink(self, _symbol: str, events: list[Event]) -> None:
        self._heard = time.monotonic()
        for event in events:
            self.events.put_nowait(event)

    async def open(self) -> None:
        """Returns once the hub carries the pair (asking again, with back-off, until it does)."""
        while True:
            try:
                await self.source.add(self.ctx.symbol, self._sink)
                self._heard = time.monotonic()
                return
            except Exception as exc:  # a hub that is down or refuses: ask again after a back-off
                self.failures += 1
                self.ctx.last_error = f"stream: {type(exc).__name__}: {exc}"
                log.warning("no stream hub carries the pair yet (%s)", exc, extra=self.ctx.extra)
                await asyncio.sleep(backoff_s(min(self.failures, MAX_BACKOFF_ATTEMPT)))

    async def close(self) -> None:
        try:
            await self.source.remove(self.ctx.symbol)
        except Exception as exc:  # a hub that is gone carries nothing anyway
            log.debug("leaving the stream hub: %s", exc, extra=self.ctx.extra)

    def _stall_timeout_s(self) -> float:
        assert self.ctx.clock is not None
        return max(MIN_STALL_WALL_S, self.ctx.clock.wall_seconds(STALL_INTERVALS * MINUTE_MS))

    async def next_event(
        self, stopper: asyncio.Task, timeout_s: float
    ) -> KlineUpdate | BookQuote | Resumed | Dropped | None:
        """The next message, or None after ``timeout_s`` of quiet or once ``stopper`` is done."""
        if time.monotonic() - self._heard > self._stall_timeout_s():
            self._heard = time.monotonic()
            if not await self._carried():
                return Dropped(f"no message for {self._stall_timeout_s():.1f} s and no hub carries it")
        getter = asyncio.create_task(self.events.get())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if getter not in done:
            getter.cancel()
            return None
        event = getter.result()
        if isinstance(event, Renewed):
            self.ctx.counters.renewals += 1
            return None
        if isinstance(event, KlineUpdate) and event.closed and event.symbol == self.ctx.symbol:
            self.failures = 0  # the stream works again: the back-off starts afresh
        return event

    async def _carried(self) -> bool:
        try:
            return await asyncio.wait_for(self.source.carries(self.ctx.symbol), self._stall_timeout_s())
        except Exception:  # a hub that does not answer carries nothing
            return False

    async def recover(self, event: Resumed | Dropped) -> None:
        """After an interruption: be carried again (the caller then repairs what closed meanwhile)."""
        self.failures += 1
        self.ctx.counters.reconnects += 1
        self.ctx.last_error = f"stream: {event.reason}"
        log.warning("stream interrupted (%s)", event.reason, extra=self.ctx.extra)
        if isinstance(event, Dropped):
            await self.close()
            await asyncio.sleep(backoff_s(min(self.failures, MAX_BACKOFF_ATTEMPT)))
            await self.open()
