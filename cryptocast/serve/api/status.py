"""/status: every tracked pair's state, data lag, completeness and restarts in one answer.

A status table of all pairs is refreshed every few seconds; asking ``/pairs/{symbol}`` once per pair
would cost a count over each pair's candles, and more, per pair and per refresh. Here the counts of
every pair come from one SQL statement grouped by pair, the lag from one reading of the exchange's
clock; only a deployment's alarm (held in its replica, not in the database) is asked per pair, all
at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, Response

from cryptocast.serve import reads
from cryptocast.serve.api import schemas, views
from cryptocast.serve.api.deps import Services
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.errors import ApiError
from cryptocast.sql.database import Database

router = APIRouter(tags=["pairs"])

STATUS_SQL = """
SELECT s.symbol, s.status, s.restarts, s.last_error, s.last_candle_time,
       coalesce(c.stored, 0) AS stored, c.first, c.last, coalesce(h.holes, 0)::bigint AS holes
FROM symbols s
LEFT JOIN (SELECT symbol_id, count(*) AS stored, min(open_time) AS first, max(open_time) AS last
           FROM price_history GROUP BY symbol_id) c ON c.symbol_id = s.id
LEFT JOIN (SELECT symbol_id, sum(extract(epoch FROM end_time - start_time) / 60 + 1) AS holes
           FROM gaps WHERE kind = 'exchange_hole' GROUP BY symbol_id) h ON h.symbol_id = s.id
WHERE s.status <> 'removed'
ORDER BY s.symbol
"""


async def pair_statuses(db: Database, now_ms: float | None) -> list[dict]:
    """Every tracked pair's state, lag (None while the exchange's clock is unknown), completeness
    and restarts, from one statement."""
    return [
        {
            "symbol": r["symbol"],
            "status": r["status"],
            "data_lag_s": views.clock_fields({"last_candle_time": views.iso(r["last_candle_time"])}, now_ms)[
                "data_lag_s"
            ],
            "completeness_percent": views.completeness(r),
            "stored_minutes": r["stored"],
            "restarts": r["restarts"],
            "last_candle_time": views.iso(r["last_candle_time"]),
            "last_error": r["last_error"],
        }
        for r in await reads.fetch(db, STATUS_SQL)
    ]


async def _alarm(services: ApiServices, symbol: str) -> dict | None:
    """The alarm of the pair's deployment (a refused model swap), None when it has none or is away."""
    try:
        return (await services.call(symbol, "status")).get("alarm")
    except ApiError:
        return None


@router.get(
    "/status",
    summary="Every tracked pair's state, lag, completeness and restarts (one query)",
    responses=schemas.answers(200, schemas.StatusList, 503),
)
async def status(services: Services) -> Response:
    now_ms = await services.exchange_now_ms()
    rows = await pair_statuses(services.db, now_ms)
    alarms = await asyncio.gather(*(_alarm(services, r["symbol"]) for r in rows))
    return views.json_answer(
        {
            "pairs": [r | {"alarm": a} for r, a in zip(rows, alarms, strict=True)],
            "exchange_time": views.clock_fields({"last_candle_time": None}, now_ms)["exchange_time"],
            "as_of": datetime.now(UTC).isoformat(),
        }
    )
