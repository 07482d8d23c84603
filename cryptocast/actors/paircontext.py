"""What the collaborators of one pair's ingestion share, so that each of them keeps to one job.

The pair ingestor (``ingestor.py``) composes budgeted REST, the stream keeper, held writes, the
backfill and repair. They work on one configuration (it may change while the pair runs) and, once
measured, one exchange clock; they report through one set of counters and one last error, the
names ``PairIngestor.status`` has always returned, and log under the ingestor's logger name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptocast.actors.sanity import describe_future
from cryptocast.exchange.exchangeclock import ExchangeClock

INGEST_LOGGER = "cryptocast.actors.ingestor"  # one logger name for all of a pair's ingestion
RECONCILE_EVERY = 10  # closed socket candles per REST reconciliation call
BUFFER_LIMIT = 20_000  # closed candles held while the database is down
CONNECTION_LIFETIME_MS = 24 * 3_600_000

log = logging.getLogger(INGEST_LOGGER)


@dataclass
class IngestConfig:
    lookback_ms: int | None = 30 * 24 * 3_600_000  # None: from the pair's first candle
    reconcile_every: int = RECONCILE_EVERY
    buffer_limit: int = BUFFER_LIMIT
    connection_lifetime_ms: int = CONNECTION_LIFETIME_MS  # the exchange's cutoff, on its clock


@dataclass
class Counters:
    rest_calls: int = 0
    written: int = 0
    repaired: int = 0
    reconciled_mismatches: int = 0
    reconnects: int = 0
    renewals: int = 0
    holes: int = 0
    buffered: int = 0
    dropped_from_buffer: int = 0
    future_rejected: int = 0  # closed candles dated after the exchange's now
    rejected: int = 0  # candles the writer refused as insane
    quotes_refused: int = 0
    throttled: int = 0  # REST answers 429
    banned: int = 0  # REST answers 418


@dataclass
class PairContext:
    symbol: str
    config: IngestConfig
    counters: Counters = field(default_factory=Counters)
    symbol_id: int | None = None  # the pair's row, read at start
    clock: ExchangeClock | None = None  # the exchange's clock, measured at start
    last_error: str | None = None
    extra: dict = field(init=False)  # the log context of every line about this pair

    def __post_init__(self) -> None:
        self.extra = {"pair": self.symbol}

    @property
    def sid(self) -> int:
        """``symbol_id``, for the work that runs after the start has read it."""
        if self.symbol_id is None:
            raise RuntimeError(f"{self.symbol}: the pair's row has not been read yet")
        return self.symbol_id

    def refuse_future(self, open_times: list[int], now: int, source: str) -> None:
        """Candles dated after the exchange's now were dropped (``sanity.py``): count and say so."""
        self.counters.future_rejected += len(open_times)
        log.warning("refused %s from %s", describe_future(open_times, now), source, extra=self.extra)
