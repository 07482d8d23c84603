"""/models/{symbol}, /pairs/{symbol}/retrain and /rollback: a pair's model versions and changing them.

Versions and their scores are read from the registry; a retrain or a rollback is a command row for
the training scheduler to carry out, so both answer 202 with where to follow it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from cryptocast.serve import calibration, scoring, training
from cryptocast.serve.api import schemas, views
from cryptocast.serve.api.deps import WRITES, Services, Symbol
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.errors import ApiError
from cryptocast.sql import command_queue
from cryptocast.sql.queries import submit_command
from cryptocast.tune import registry

router = APIRouter(tags=["models"])

SHOWN_METRICS = ("val_skill", "test", "gate", "test_window")


@router.post(
    "/pairs/{symbol}/retrain",
    status_code=202,
    dependencies=WRITES,
    summary="Queue a retrain of this pair; follow it at GET /commands/{id}",
    responses=schemas.answers(202, schemas.CommandAccepted, 401, 404, 409, 422, 429, 503),
)
async def retrain(services: Services, symbol: Symbol) -> Response:
    row = await services.pair(symbol)
    views.conflict_if_backfilling(row)
    command = await command_queue.submit_training(
        services.db, "retrain", row["symbol"], "request", "requested through the API"
    )
    if command is None:
        open_ = await command_queue.open_training(services.db, row["symbol"])
        if open_ is None:  # it ended between the insert and this read
            raise ApiError(409, f"a training of {row['symbol']} just ended; ask again", "already_requested")
        raise ApiError(
            409,
            f"a {open_['kind']} of {row['symbol']} is already {open_['status']} (command "
            f"{open_['id']}); follow it at /commands/{open_['id']}",
            "already_requested",
            command=command_queue.view(open_),
        )
    return await _accepted(services, command)


@router.post(
    "/pairs/{symbol}/rollback",
    status_code=202,
    dependencies=WRITES,
    summary="Restore the pair's previous LSTM champion (or persistence alone); a command",
    responses=schemas.answers(202, schemas.CommandAccepted, 401, 404, 409, 422, 429, 503),
)
async def rollback(services: Services, symbol: Symbol) -> Response:
    row = await services.pair(symbol)
    if await registry.current(services.db, row["id"], "lstm") is None:
        raise ApiError(409, f"{row['symbol']} has no LSTM champion to roll back", "no_champion")
    command = await submit_command(
        services.db, "rollback", row["symbol"], trigger="request", reason="requested through the API"
    )
    return await _accepted(services, command)


async def _accepted(services: ApiServices, command_id: int) -> Response:
    """202 for a queued command: where to follow it, and whether anything is there to run it."""
    row = await command_queue.get(services.db, command_id)
    assert row is not None  # queued just now; commands are never deleted
    body = command_queue.view(row) | {
        "command_id": command_id,
        "scheduler": await training.scheduler_view(services.db),
    }
    return Response(json.dumps(body), 202, media_type="application/json", headers={"Location": body["url"]})


@router.get(
    "/models/{symbol}",
    summary="Model versions, status, metrics and live scores",
    responses=schemas.answers(200, schemas.Models, 404, 422, 503),
)
async def models(services: Services, symbol: Symbol) -> Response:
    row = await services.pair(symbol)
    live = await scoring.scores(services.db, row["id"], services.options.skill_window_minutes)
    by_model: dict[int, list[dict]] = {}
    for s in live:
        by_model.setdefault(s.model_id, []).append(s.to_dict())
    versions = [
        {
            "id": r.id,
            "kind": r.kind,
            "version": r.version,
            "status": r.status,
            "reason": r.status_reason,
            "trained_at": views.iso(r.trained_at),
            "data_start": views.iso(r.data_start),
            "data_end": views.iso(r.data_end),
            "served_horizons": r.served_horizons,
            "artifact": r.artifact_uri is not None,
            "hyperparameters": r.hyperparameters,
            "metrics": {k: v for k, v in r.metrics.items() if k in SHOWN_METRICS},
            "scores": calibration.training_view(r.metrics),
            "live": by_model.get(r.id, []),
        }
        for r in await registry.records(services.db, row["id"])
    ]
    return views.json_answer(
        {"symbol": row["symbol"], "versions": versions, "freshness": await services.freshness(row)}
    )
