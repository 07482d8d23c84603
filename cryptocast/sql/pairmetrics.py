"""Per-pair counts and levels of ingestion and training, kept where ``GET /metrics`` can read them.

The pair actors run in Ray worker processes, trainings in the scheduler's, and ``/metrics`` is
answered by a Serve replica: the one thing they share is the database, so the numbers meet in
``pair_metrics``. A writer of a count adds what it counted since its last write (never a total of
its own), so an actor restarted with its counts at zero adds to the stored total and a counter
never goes backwards; a level is set. The names form a closed catalog: a writer cannot invent a
series and a reader knows each one's kind and meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from cryptocast.sql.database import Database
from cryptocast.sql.schema import pair_metrics


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    help: str


COUNTERS = (
    Series("ingest_candles_stored", "Candles the pair's ingestion stored (backfill, socket and repair)"),
    Series("ingest_candles_repaired", "Missing minutes fetched over REST and stored as repairs"),
    Series("ingest_exchange_hole_candles", "Minutes the exchange has no candle for, ledgered as holes"),
    Series("ingest_ws_reconnects", "Websocket streams replaced after they failed"),
    Series("ingest_rest_429_responses", "REST answers 429 (rate limited): every pair waited Retry-After"),
    Series("ingest_rest_418_responses", "REST answers 418 (IP banned): every pair waited Retry-After"),
    Series("training_runs_started", "Retrains of the pair the training scheduler started"),
    Series("training_runs_finished", "Retrains of the pair that ended with a registered model"),
    Series("training_runs_failed", "Retrains of the pair that failed"),
    Series("model_promotions", "Trainings whose LSTM the gate let serve on at least one horizon"),
    Series("model_refusals", "Trainings whose LSTM the gate refused on every horizon (kept as shadow)"),
)
GAUGES = (Series("training_last_run_duration_seconds", "Wall seconds the pair's last retrain took"),)
COUNTER_NAMES = frozenset(s.name for s in COUNTERS)
GAUGE_NAMES = frozenset(s.name for s in GAUGES)

# Every stored series with its pair, for /metrics.
READ_SQL = """
SELECT s.symbol, m.name, m.value FROM pair_metrics m JOIN symbols s ON s.id = m.symbol_id
ORDER BY s.symbol, m.name
"""


def _checked(names: Mapping[str, float], catalog: frozenset[str]) -> None:
    unknown = set(names) - catalog
    if unknown:
        raise ValueError(f"not in the pair metrics catalog: {', '.join(sorted(unknown))}")


async def add_on(conn: AsyncConnection, symbol_id: int, counts: Mapping[str, float]) -> None:
    """Add ``counts`` (what was counted since the last write) to the pair's stored counters."""
    _checked(counts, COUNTER_NAMES)
    rows = [{"symbol_id": symbol_id, "name": n, "value": float(v)} for n, v in counts.items() if v]
    if not rows:
        return
    stmt = insert(pair_metrics).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[pair_metrics.c.symbol_id, pair_metrics.c.name],
            set_={"value": pair_metrics.c.value + stmt.excluded.value, "updated_at": func.now()},
        )
    )


async def set_on(conn: AsyncConnection, symbol_id: int, levels: Mapping[str, float]) -> None:
    """Set the pair's gauges to ``levels``."""
    _checked(levels, GAUGE_NAMES)
    if not levels:
        return
    stmt = insert(pair_metrics).values(
        [{"symbol_id": symbol_id, "name": n, "value": float(v)} for n, v in levels.items()]
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[pair_metrics.c.symbol_id, pair_metrics.c.name],
            set_={"value": stmt.excluded.value, "updated_at": func.now()},
        )
    )


async def add(db: Database, symbol_id: int, counts: Mapping[str, float]) -> None:
    async with db.begin() as conn:
        await add_on(conn, symbol_id, counts)


async def record(
    db: Database, symbol_id: int, counts: Mapping[str, float], levels: Mapping[str, float]
) -> None:
    """Counts added and levels set in one transaction."""
    async with db.begin() as conn:
        await add_on(conn, symbol_id, counts)
        await set_on(conn, symbol_id, levels)
