"""What routes receive besides their own logic: the replica's services, and parameters as types.

Each alias carries its validation and OpenAPI description once, so every route that takes a
symbol, a time range or a page size takes it alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Security
from fastapi.security import HTTPBearer
from ray import serve

from cryptocast.serve import calibration, timeranges
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.auth import require_token
from cryptocast.serve.ratelimit import limit_writes
from cryptocast.sql import command_queue


def services() -> ApiServices:
    """The services the replica's deployment made in its ``__init__`` (``serve/router.py``): Serve
    names the replica's instance, as it does to give class routes their ``self``."""
    replica: Any = serve.get_replica_context().servable_object  # the Router; Ray annotates a Callable
    return replica.services


Services = Annotated[ApiServices, Depends(services)]
# The token as the OpenAPI document names it (``components.securitySchemes``, and each write's
# ``security``). It never refuses a request itself: ``require_token`` checks the header.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="CRYPTOCAST_API_TOKEN: every write needs it when it is set (always in prod mode)",
    auto_error=False,
)
# routes that change state: the rate, then the token
WRITES = [Depends(limit_writes), Security(BEARER), Depends(require_token)]

Symbol = Annotated[str, Path()]
SymbolFilter = Annotated[str | None, Query(max_length=64)]
Confirm = Annotated[str | None, Query(max_length=64, description="purge only: the pair's symbol again")]
Start = Annotated[datetime | None, Query(description="inclusive, ISO 8601 (UTC if no offset)")]
End = Annotated[datetime | None, Query(description="exclusive, ISO 8601 (UTC if no offset)")]
Limit = Annotated[int, Query(ge=1, le=timeranges.MAX_LIMIT)]
ScoresWindow = Annotated[
    int | None,
    Query(
        ge=calibration.MIN_WINDOW_MINUTES,
        le=calibration.MAX_WINDOW_MINUTES,
        description="minutes of origins to score, ending at the newest candle [the live skill window]",
    ),
]
StatusFilter = Annotated[str | None, Query(max_length=16)]
KindFilter = Annotated[str | None, Query(max_length=24)]
CommandsLimit = Annotated[int, Query(ge=1, le=command_queue.LIST_LIMIT)]
CommandId = Annotated[int, Path(ge=1, le=2**63 - 1)]
