"""/pairs/{symbol}/candles and /top-of-book: the stored market data, paged by time.

The market data are what the forecasts are made from, read as ingestion stored them. A request's
candles are a hot read (``HotReads``): kept until news of the pair, answered before FastAPI while
fresh, and its page serialised once per last candle.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response

from cryptocast.serve import reads, timeranges
from cryptocast.serve.api import export, schemas, views
from cryptocast.serve.api.deps import End, Limit, Services, Start, Symbol
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.encoded import Prepared, Renewing, dumps, respond

router = APIRouter(tags=["market data"])

BOOK_COLUMNS = ["minute", "bid_price", "bid_qty", "ask_price", "ask_qty", "derived"]


@router.get(
    "/pairs/{symbol}/candles",
    summary="1-minute candles in [start, end), oldest first, paged",
    responses=export.documented(schemas.answers(200, schemas.Candles, 404, 422, 503, etag=True)),
)
async def candles(
    services: Services,
    symbol: Symbol,
    request: Request,
    start: Start = None,
    end: End = None,
    limit: Limit = timeranges.DEFAULT_LIMIT,
    file_format: export.Format = None,
) -> Response:
    if file_format is not None:
        return await export.answer(services, symbol, "candles", file_format, start, end)
    pair = views.symbol(symbol)
    # the same request is answered alike until news
    key = f"{pair} {views.iso(start)} {views.iso(end)} {limit}"
    hot = services.hot
    answer = await hot.read(
        hot.candles, key, pair, lambda: _candles(services, symbol, start, end, limit), request
    )
    return respond(answer.current(), request)


async def _candles(
    services: ApiServices, symbol: str, start: datetime | None, end: datetime | None, limit: int
) -> Renewing:
    row = await services.pair(symbol)
    lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.CANDLES)
    # The rows change when a candle lands; until then identical reads share one serialised page.
    key = f"{row['id']} {lo.isoformat()} {hi.isoformat()} {limit} {row['last_candle_time']}"
    page = await services.hot.pages.get(key, lambda: _candle_page(services, row, lo, hi, limit))
    return await services.renewing(row, page)


async def _candle_page(services: ApiServices, row: dict, lo: datetime, hi: datetime, limit: int) -> Prepared:
    rows = await reads.page(services.db, reads.CANDLES_SQL, row["id"], lo, hi, limit)
    items = [
        [
            r["open_time"].isoformat(),
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            r["quote_volume"],
            r["trades"],
            r["provenance"],
        ]
        for r in rows
    ]
    return Prepared(_head(row, lo, hi, schemas.CANDLE_COLUMNS, rows, limit), {"candles": dumps(items)})


def _head(row: dict, lo: datetime, hi: datetime, columns: list[str], rows: list[dict], limit: int) -> dict:
    """What a page says besides its rows: the pair, the range, the columns (the first, each row's
    minute) and where the next page starts. The rows themselves are built by each route with the
    columns spelled out: a generic row builder costs a fifth more per page of candles."""
    return {
        "symbol": row["symbol"],
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "columns": columns,
        "next_start": views.next_start(rows, columns[0], limit),
    }


@router.get(
    "/pairs/{symbol}/top-of-book",
    summary="Best bid/ask per minute in [start, end), paged",
    responses=export.documented(schemas.answers(200, schemas.TopOfBook, 404, 422, 503, etag=True)),
)
async def top_of_book(
    services: Services,
    symbol: Symbol,
    request: Request,
    start: Start = None,
    end: End = None,
    limit: Limit = timeranges.DEFAULT_LIMIT,
    file_format: export.Format = None,
) -> Response:
    if file_format is not None:
        return await export.answer(services, symbol, "top-of-book", file_format, start, end)
    row = await services.pair(symbol)
    lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.CANDLES)
    rows = await reads.page(services.db, reads.BOOK_SQL, row["id"], lo, hi, limit)
    items = [
        [r["minute"].isoformat(), r["bid_price"], r["bid_qty"], r["ask_price"], r["ask_qty"], r["derived"]]
        for r in rows
    ]
    head = _head(row, lo, hi, BOOK_COLUMNS, rows, limit)
    return views.json_answer(
        head | {"top_of_book": items, "freshness": await services.freshness(row)}, request
    )
