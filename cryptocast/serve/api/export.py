"""``?format=csv|parquet`` on the candles, top-of-book and predictions routes: the range as a file.

Why: the routes answer JSON pages for screens; a file of a whole range is for people's own tools.
The routes only branch here when ``format`` is given, so their JSON answers (and the hot reads of
candles) stay exactly as they are. The file is streamed chunk by chunk from ``sql/export.py``; the
first chunk is read before the answer starts, so a failing first query is answered as an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import StreamingResponse

from cryptocast.serve import timeranges
from cryptocast.serve.api.services import ApiServices
from cryptocast.sql import export


class FileFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


Format = Annotated[
    FileFormat | None,
    Query(
        alias="format",
        description=(
            "csv or parquet: the whole [start, end) as one file, streamed "
            f"(at most {export.MAX_SPAN.days} days; by default the last day); omit for JSON pages"
        ),
    ),
]
SPAN = timeranges.Span(timedelta(days=1), export.MAX_SPAN)  # an export's default window and its widest
FILE = {"schema": {"type": "string", "format": "binary"}}


def documented(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` with the files added to its 200 answer, beside its JSON."""
    ok = responses.get(200, {})
    return responses | {
        200: ok
        | {
            "description": "JSON pages; with `format`, a CSV file (header row) or a Parquet file of the whole range",
            "content": dict.fromkeys(export.MEDIA_TYPES.values(), FILE),
        }
    }


async def answer(
    services: ApiServices,
    symbol: str,
    dataset: str,
    fmt: FileFormat,
    start: datetime | None,
    end: datetime | None,
    shadow: bool = False,
) -> StreamingResponse:
    """The pair's ``dataset`` over [start, end) as a file named by what it holds."""
    row = await services.pair(symbol)
    lo, hi = timeranges.resolve(start, end, row["last_candle_time"], SPAN)
    chosen = export.DATASETS[dataset]
    rows = export.chunks(services.db, chosen, row["id"], lo, hi, shadow=shadow)
    body = export.encode(rows, chosen, fmt.value)
    first = await anext(body)
    name = export.filename(row["symbol"], chosen, lo, hi, fmt.value)
    return StreamingResponse(
        _after(first, body),
        media_type=export.MEDIA_TYPES[fmt.value],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        yield piece
