"""/pairs: which pairs are tracked, one pair's state at a glance, and adding or removing one.

Adding and removing are commands (rows that ingestion carries out), so these routes answer 202
with the command; the pair's own state comes from its row, its deployment and the scheduler's plan.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from cryptocast.actors.commands import PairRejected, validate_pair
from cryptocast.serve import reads, scoring, training
from cryptocast.serve.api import schemas, views
from cryptocast.serve.api.deps import WRITES, Confirm, Services, Symbol
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.errors import ApiError
from cryptocast.sql.queries import submit_command

router = APIRouter(tags=["pairs"])


class AddPair(BaseModel):
    symbol: str = Field(max_length=64, examples=["BTCUSDT"])


@router.get("/pairs", summary="Tracked pairs", responses=schemas.answers(200, schemas.PairList, 503))
async def pairs(services: Services) -> Response:
    rows = await reads.fetch(services.db, reads.PAIRS_SQL)
    return views.json_answer(
        {
            "pairs": [
                {
                    "symbol": r["symbol"],
                    "status": r["status"],
                    "last_candle_time": views.iso(r["last_candle_time"]),
                    "backfill": views.backfill(r),
                    "restarts": r["restarts"],
                    "last_error": r["last_error"],
                }
                for r in rows
            ],
            "as_of": datetime.now(UTC).isoformat(),
        }
    )


@router.post(
    "/pairs",
    status_code=202,
    dependencies=WRITES,
    summary="Track a new pair",
    responses=schemas.answers(202, schemas.PairAdded, 401, 404, 409, 413, 422, 429, 503),
)
async def add_pair(services: Services, body: AddPair) -> Response:
    symbol = views.symbol(body.symbol)
    row = await reads.fetchrow(services.db, reads.PAIR_SQL, symbol)
    if row is not None and row["status"] != "removed":
        raise ApiError(409, f"{symbol} is already tracked (status {row['status']})", "already_tracked")
    pending = [
        c for c in await reads.fetch(services.db, reads.OPEN_COMMANDS_SQL, symbol) if c["kind"] == "add_pair"
    ]
    if pending:
        raise ApiError(
            409, f"{symbol} was already requested (command {pending[0]['id']})", "already_requested"
        )
    try:
        info = await validate_pair(await services.exchange(), symbol)
    except PairRejected as exc:
        raise ApiError(404, str(exc), "unknown_symbol") from None
    except (OSError, httpx.HTTPError) as exc:
        raise ApiError(503, f"cannot reach the exchange at {services.options.rest_url}: {exc}") from None
    command = await submit_command(services.db, "add_pair", info.symbol)
    return Response(
        json.dumps(
            {
                "symbol": info.symbol,
                "base_asset": info.base_asset,
                "quote_asset": info.quote_asset,
                "command_id": command,
                "status": "requested",
            }
        ),
        202,
        media_type="application/json",
    )


@router.delete(
    "/pairs/{symbol}",
    status_code=202,
    dependencies=WRITES,
    summary="Stop ingesting a pair (data kept; purge=true&confirm=SYMBOL deletes them)",
    responses=schemas.answers(202, schemas.PairRemoved, 400, 401, 404, 422, 429, 503),
)
async def remove_pair(
    services: Services, symbol: Symbol, purge: bool = False, confirm: Confirm = None
) -> Response:
    pair = views.symbol(symbol)
    if purge and (confirm or "").strip().upper() != pair:
        raise ApiError(
            400,
            f"purging {pair} deletes its stored candles, predictions and models; to confirm, "
            f"send DELETE /pairs/{pair}?purge=true&confirm={pair}",
            "confirmation_required",
        )
    row = await services.pair(pair)
    kind = "purge_pair" if purge else "remove_pair"
    command = await submit_command(services.db, kind, row["symbol"])
    return Response(
        json.dumps({"symbol": row["symbol"], "command_id": command, "kind": kind}),
        202,
        media_type="application/json",
    )


@router.get(
    "/pairs/{symbol}",
    summary="A pair's state, progress, model and live accuracy",
    responses=schemas.answers(200, schemas.Pair, 404, 422, 503),
)
async def pair(services: Services, symbol: Symbol) -> Response:
    db, window = services.db, services.options.skill_window_minutes
    row = await services.pair(symbol)
    sid = row["id"]
    counts = await reads.fetchrow(db, reads.COMPLETENESS_SQL, sid)
    assert counts is not None  # an aggregate: always one row
    serving = await _serving(services, row["symbol"])
    live = scoring.served_summary(await scoring.scores(db, sid, window))
    last_training = await reads.fetchval(db, reads.LAST_TRAINING_SQL, sid)
    plan = await training.pair_training(db, sid, row["symbol"], row["status"])
    return views.json_answer(
        {
            "symbol": row["symbol"],
            "status": row["status"],
            "backfill": views.backfill(row),
            "completeness_percent": views.completeness(counts),
            "stored_minutes": counts["stored"],
            "first_candle_time": views.iso(counts["first"]),
            "restarts": row["restarts"],
            "last_error": row["last_error"],
            "serving": serving,
            "alarm": serving.get("alarm"),
            "last_training": views.iso(last_training),
            "next_training": plan["next"]["at"] if plan["next"] else None,
            "training": plan,
            "live_skill": {"window_minutes": window, "horizons": live},
            "freshness": await services.freshness(row),
        }
    )


async def _serving(services: ApiServices, symbol: str) -> dict:
    """The pair's deployment's own status, or why it cannot be asked."""
    try:
        return await services.call(symbol, "status")
    except ApiError as exc:
        return {"alarm": None, "error": exc.message}
