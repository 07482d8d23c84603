"""/commands: what was asked of ingestion and training (pair changes, trainings, rollbacks), and how
each request went.

Every write of the API becomes a command row; these routes are where a caller follows one.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from cryptocast.serve import training
from cryptocast.serve.api import schemas, views
from cryptocast.serve.api.deps import (
    CommandId,
    CommandsLimit,
    KindFilter,
    Services,
    StatusFilter,
    SymbolFilter,
)
from cryptocast.serve.errors import ApiError
from cryptocast.sql import command_queue
from cryptocast.sql.schema import COMMAND_KINDS, COMMAND_STATUSES

router = APIRouter(tags=["commands"])


@router.get(
    "/commands",
    summary="Commands, newest first: pair changes, trainings, rollbacks and their outcome",
    responses=schemas.answers(200, schemas.CommandList, 422, 503),
)
async def commands(
    services: Services,
    symbol: SymbolFilter = None,
    status: StatusFilter = None,
    kind: KindFilter = None,
    limit: CommandsLimit = 20,
) -> Response:
    if status is not None and status not in COMMAND_STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(COMMAND_STATUSES)}")
    if kind is not None and kind not in COMMAND_KINDS:
        raise ApiError(422, f"kind must be one of {', '.join(COMMAND_KINDS)}")
    rows = await command_queue.find(
        services.db, views.symbol(symbol) if symbol else None, status, kind, limit
    )
    return views.json_answer(
        {
            "commands": [command_queue.view(r) for r in rows],
            "scheduler": await training.scheduler_view(services.db),
        }
    )


@router.get(
    "/commands/{command_id}",
    summary="One command: status, progress while running, result or reason",
    responses=schemas.answers(200, schemas.Command, 404, 422, 503),
)
async def command(services: Services, command_id: CommandId) -> Response:
    row = await command_queue.get(services.db, command_id)
    if row is None:
        raise ApiError(404, f"no command {command_id}")
    return views.json_answer(command_queue.view(row))
