"""/pairs/{symbol}/predictions, /predictions/latest, /predict and /scores: the forecasts and how
well they do.

Stored forecasts are read from PostgreSQL (the latest one is a hot read, ``HotReads``); a forecast
on demand goes to the pair's model deployment; live scores are computed from stored forecasts and
the closes that followed them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from cryptocast.serve import calibration, reads, timeranges
from cryptocast.serve.api import export, schemas, views
from cryptocast.serve.api.deps import End, Limit, ScoresWindow, Services, Start, Symbol
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.encoded import Prepared, Renewing, respond
from cryptocast.serve.errors import ApiError
from cryptocast.tune.candles import OHLCV

router = APIRouter(tags=["predictions"])

MAX_WINDOW = 2000  # candles a caller may send to /predict
MAX_PRICE = 1e12
PROBLEM_STATUS = {"no_model": 409, "not_enough_history": 409, "invalid_window": 422}


class CandleIn(BaseModel):
    open_time: int = Field(ge=0, le=7_258_118_400_000, description="open time, ms since the epoch")
    open: float = Field(gt=0, le=MAX_PRICE)
    high: float = Field(gt=0, le=MAX_PRICE)
    low: float = Field(gt=0, le=MAX_PRICE)
    close: float = Field(gt=0, le=MAX_PRICE)
    volume: float = Field(ge=0, le=MAX_PRICE)


class PredictIn(BaseModel):
    candles: list[CandleIn] | None = Field(
        None,
        max_length=MAX_WINDOW,
        description="your own window of consecutive minutes; omit to use stored candles",
    )


def request_columns(candles: list[CandleIn]) -> dict[str, np.ndarray]:
    """The caller's window as columns: they cross to the pair's replica as six arrays rather than
    hundreds of small objects."""
    n = len(candles)
    return {
        "open_time_ms": np.fromiter((c.open_time for c in candles), np.int64, n),
        **{f: np.fromiter((getattr(c, f) for c in candles), np.float64, n) for f in OHLCV},
    }


@router.get(
    "/pairs/{symbol}/scores",
    summary="Live scores of the served bands: interval score, coverage ± SE, Kupiec, by UTC hour",
    responses=schemas.answers(200, schemas.Scores, 404, 422, 503),
)
async def scores(services: Services, symbol: Symbol, window_minutes: ScoresWindow = None) -> Response:
    row = await services.pair(symbol)
    window = window_minutes or services.options.skill_window_minutes
    horizons = await services.hot.scores.get(
        f"{row['id']} {window}", lambda: calibration.live_scores(services.db, row["id"], window)
    )
    return views.json_answer(
        {
            "symbol": row["symbol"],
            "window_minutes": window,
            "horizons": horizons,
            "freshness": await services.freshness(row),
        }
    )


@router.get(
    "/pairs/{symbol}/predictions",
    summary="Stored predictions by origin, with the actual close once known",
    responses=export.documented(schemas.answers(200, schemas.Predictions, 404, 422, 503, etag=True)),
)
async def predictions(
    services: Services,
    symbol: Symbol,
    request: Request,
    start: Start = None,
    end: End = None,
    limit: Limit = timeranges.DEFAULT_LIMIT,
    shadow: bool = False,
    file_format: export.Format = None,
) -> Response:
    if file_format is not None:
        return await export.answer(services, symbol, "predictions", file_format, start, end, shadow)
    row = await services.pair(symbol)
    lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.PREDICTIONS)
    rows = await reads.fetch(services.db, reads.PREDICTIONS_SQL, row["id"], lo, hi, limit, shadow)
    return views.json_answer(
        {
            "symbol": row["symbol"],
            "start": lo.isoformat(),
            "end": hi.isoformat(),
            "predictions": [views.prediction(r) for r in rows],
            "next_start": views.next_start(rows, "origin_time", limit),
            "freshness": await services.freshness(row),
        },
        request,
    )


@router.get(
    "/pairs/{symbol}/predictions/latest",
    summary="The newest stored forecast, every horizon",
    responses=schemas.answers(200, schemas.LatestPredictions, 404, 409, 422, 503, etag=True),
)
async def latest(services: Services, symbol: Symbol, request: Request) -> Response:
    key = views.symbol(symbol)
    hot = services.hot
    answer = await hot.read(hot.latest, key, key, lambda: _latest(services, symbol), request)
    return respond(answer.current(), request)


async def _latest(services: ApiServices, symbol: str) -> Renewing:
    row = await services.pair(symbol)
    origin = await reads.fetchval(services.db, reads.LATEST_ORIGIN_SQL, row["id"])
    if origin is None:
        views.conflict_if_backfilling(row)
        raise ApiError(
            409,
            f"{row['symbol']} has no prediction yet: the first comes after its first model",
            "no_prediction",
        )
    rows = await reads.fetch(
        services.db,
        reads.PREDICTIONS_SQL,
        row["id"],
        origin,
        origin + timedelta(minutes=1),
        timeranges.MAX_LIMIT,
        False,
    )
    return await services.renewing(
        row,
        Prepared(
            {
                "symbol": row["symbol"],
                "origin_time": origin.isoformat(),
                "predictions": [views.prediction(r) for r in rows],
            }
        ),
    )


@router.post(
    "/pairs/{symbol}/predict",
    summary="Forecast now, from your window or the newest stored candles",
    responses=schemas.answers(200, schemas.Forecast, 404, 409, 413, 422, 503),
)
async def predict(
    services: Services, symbol: Symbol, body: Annotated[PredictIn | None, Body()] = None
) -> Response:
    row = await services.pair(symbol)
    candles = request_columns(body.candles) if body is not None and body.candles is not None else None
    if candles is None:
        views.conflict_if_backfilling(row)
    answer = await services.call(row["symbol"], "predict", candles)
    if "error" in answer:
        raise ApiError(PROBLEM_STATUS.get(answer["error"], 503), answer["message"], answer["error"])
    answer["freshness"] = await services.freshness(row)
    return views.json_answer(answer)
