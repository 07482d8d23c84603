"""The API's answers as Pydantic models: what ``/openapi.json`` documents, one model per answer.

The routes build their JSON themselves (the most read answers are bytes serialised once and cached,
see ``encoded.py`` and ``hotpath.py``), so these models are declared for the document only
(``responses=``), never run on an answer: validating a 200 KB page of candles on every request would
cost more than the rest of the cached read. The serving tests validate real answers against them,
so the document cannot drift from what the routes send. Answers forbid fields they do not declare
(``additionalProperties: false``); an error body allows the details an error adds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from cryptocast.serve.bodylimit import MAX_BODY_BYTES
from cryptocast.serve.errors import STATUS_CODES

# The columns of a candles page, in the order each row lists its values.
CANDLE_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "provenance",
]

ERROR_DESCRIPTIONS = {
    400: "The request asks for something that needs a confirmation it lacks",
    401: "A write without the configured bearer token",
    404: "No such pair, symbol on the exchange or command",
    409: "Conflicts with the pair's state (backfilling, no model yet, already tracked or requested)",
    413: f"The request body is over {MAX_BODY_BYTES:,} bytes",
    422: "A parameter or the body is invalid (the message says which and why)",
    429: "Too many writes from this client address; Retry-After says when to try again",
    503: "The database, the exchange or the pair's model deployment cannot be reached right now",
}
NOT_MODIFIED = "Not modified: the ETag sent in If-None-Match is still the answer's"


class Answer(BaseModel):
    """An object of an answer: every field it has is documented."""

    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    """Every error: a code, a sentence for the user, and details some errors add (``progress``
    while a pair backfills, the open ``command`` a retrain conflicts with)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"error": "not_found", "message": "DOGEUSDT is not tracked (add it with POST /pairs)"},
                {"error": "invalid", "message": "query.limit: Input should be less than or equal to 10000"},
                {
                    "error": "backfilling",
                    "message": "ETHUSDT is still backfilling (41.5 % done, about 95 s left)",
                    "progress": {"done": 8300, "total": 20000, "percent": 41.5, "eta_s": 95.0},
                },
            ]
        },
    )

    error: str = Field(
        description=f"a code: one of {', '.join(sorted(set(STATUS_CODES.values())))}, or a specific one"
    )
    message: str = Field(description="what went wrong and, where it can, what to do")


def answers(
    ok: int, model: type[BaseModel], *errors: int, etag: bool = False
) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: its answer's model under ``ok`` and :class:`ErrorBody` under each
    of ``errors`` (``etag``: a 304 too, for a matching ``If-None-Match``)."""
    documented: dict[int | str, dict[str, Any]] = {ok: {"model": model}}
    if etag:
        documented[304] = {"description": NOT_MODIFIED}
    for status in errors:
        documented[status] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
    return documented


def restore_examples(document: dict[str, Any]) -> None:
    """Put back the nulls FastAPI drops from the examples in ``document`` (it encodes the whole
    document without None values), so that each example is an answer its model accepts."""
    mine = {
        name: model
        for name, model in globals().items()
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == __name__
    }
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if "examples" in schema and name in mine:
            schema["examples"] = mine[name].model_json_schema()["examples"]


# --- shared parts ---------------------------------------------------------------------------------
class Backfill(Answer):
    done: int = Field(description="minutes fetched so far")
    total: int = Field(description="minutes to fetch (0 before the backfill has counted them)")
    percent: float | None
    eta_s: float | None = Field(description="seconds left, estimated from the rate so far")


class FreshModel(Answer):
    kind: str = Field(description="persistence or lstm")
    version: int
    trained_at: datetime | None
    served_horizons: list[int] | None = Field(description="horizons (minutes) this model serves")


class Freshness(Answer):
    """Where an answer's data stand: the champions that made it, the last candle, the lag."""

    models: list[FreshModel]
    last_candle_time: datetime | None
    data_lag_s: float | None = Field(description="seconds the last candle is behind the exchange's clock")
    exchange_time: datetime | None
    as_of: datetime


_FRESHNESS_EXAMPLE: JsonDict = {
    "models": [
        {
            "kind": "lstm",
            "version": 3,
            "trained_at": "2026-03-02T04:00:12+00:00",
            "served_horizons": [5, 15, 30],
        }
    ],
    "last_candle_time": "2026-03-02T10:41:00+00:00",
    "data_lag_s": 1.2,
    "exchange_time": "2026-03-02T10:42:01.200000+00:00",
    "as_of": "2026-03-02T10:42:01.250000+00:00",
}


_COMMAND_EXAMPLE: JsonDict = {
    "id": 42,
    "kind": "retrain",
    "symbol": "BTCUSDT",
    "status": "pending",
    "trigger": "request",
    "reason": "requested through the API",
    "created_at": "2026-03-02T10:42:05+00:00",
    "started_at": None,
    "finished_at": None,
    "seconds": None,
    "attempts": 0,
    "progress": None,
    "result": None,
    "error": None,
    "url": "/commands/42",
}
_SCHEDULER_EXAMPLE: JsonDict = {
    "running": True,
    "heartbeat_at": "2026-03-02T10:42:04+00:00",
    "started_at": "2026-03-02T09:00:00+00:00",
    "message": None,
}


class Scheduler(Answer):
    """Whether a training scheduler runs to carry out queued trainings (from its heartbeat)."""

    running: bool
    heartbeat_at: datetime | None
    started_at: datetime | None
    message: str | None = Field(description="what happens to queued trainings when none runs")


class Command(Answer):
    """A command row: what was asked of ingestion or training, and how it went."""

    model_config = ConfigDict(json_schema_extra={"examples": [_COMMAND_EXAMPLE]})

    id: int
    kind: str = Field(description="add_pair, remove_pair, purge_pair, pause_pair, resume_pair, retrain, ...")
    symbol: str | None
    status: str = Field(description="pending, running, done or failed")
    trigger: str | None = Field(description="who asked: request, new_pair, daily, drift, ...")
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None = Field(description="how long it ran, once finished")
    attempts: int
    progress: dict[str, Any] | None = Field(
        description="while running: phase, trial i of n, best so far, ETA"
    )
    result: dict[str, Any] | None = Field(description="once done: the new version and the gate's verdict")
    error: str | None
    url: str = Field(description="where to follow it")


class ServedModel(Answer):
    id: int
    kind: str
    version: int
    trained_at: datetime
    served_horizons: list[int]


class ServedModels(Answer):
    persistence: ServedModel | None
    lstm: ServedModel | None
    shadow: ServedModel | None


class Alarm(Answer):
    """A model swap the pair's deployment refused: it keeps serving its previous models."""

    message: str
    wanted: dict[str, int | None] = Field(description="the registry ids it was asked to load")
    since: float = Field(description="seconds since the epoch")


# --- pairs ----------------------------------------------------------------------------------------
class PairSummary(Answer):
    symbol: str
    status: str = Field(description="new, backfilling, live, paused, removed, ...")
    last_candle_time: datetime | None
    backfill: Backfill
    restarts: int
    last_error: str | None


class PairList(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pairs": [
                        {
                            "symbol": "BTCUSDT",
                            "status": "live",
                            "last_candle_time": "2026-03-02T10:41:00+00:00",
                            "backfill": {"done": 20160, "total": 20160, "percent": 100.0, "eta_s": 0.0},
                            "restarts": 0,
                            "last_error": None,
                        }
                    ],
                    "as_of": "2026-03-02T10:42:03.512000+00:00",
                }
            ]
        }
    )

    pairs: list[PairSummary]
    as_of: datetime


class PairAdded(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "SOLUSDT",
                    "base_asset": "SOL",
                    "quote_asset": "USDT",
                    "command_id": 42,
                    "status": "requested",
                }
            ]
        }
    )

    symbol: str
    base_asset: str
    quote_asset: str
    command_id: int = Field(description="follow it at GET /commands/{command_id}")
    status: Literal["requested"]


class PairRemoved(Answer):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"symbol": "SOLUSDT", "command_id": 43, "kind": "remove_pair"}]}
    )

    symbol: str
    command_id: int = Field(description="follow it at GET /commands/{command_id}")
    kind: Literal["remove_pair", "purge_pair"]


class Serving(Answer):
    """The pair's model deployment, as it reports itself; ``error`` alone when it cannot be asked."""

    symbol: str | None = None
    models: ServedModels | None = None
    window_minutes: int | None = Field(None, description="candles the served models read")
    alarm: Alarm | None = None
    loaded_at: float | None = Field(None, description="when its models were loaded, seconds since the epoch")
    error: str | None = Field(None, description="why the deployment could not be asked")


class HorizonSkill(Answer):
    n: int = Field(description="scored predictions")
    mae: float
    mae_persistence: float
    skill: float = Field(description="1 − MAE / MAE of persistence on the same minutes")
    coverage_80: float | None
    coverage_95: float | None


class LiveSkill(Answer):
    window_minutes: int
    horizons: dict[str, HorizonSkill] = Field(description="by horizon in minutes")


class NextTraining(Answer):
    at: datetime
    kind: str


class TrainingPlan(Answer):
    """The pair's training at a glance, read from the scheduler's plan and its command rows."""

    last: Command | None
    current: Command | None = Field(description="the pending or running training")
    next: NextTraining | None
    history_days: float | None
    needs_days: float | None
    note: str | None
    scheduler: Scheduler


class Pair(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "status": "live",
                    "backfill": {"done": 20160, "total": 20160, "percent": 100.0, "eta_s": 0.0},
                    "completeness_percent": 99.993,
                    "stored_minutes": 20183,
                    "first_candle_time": "2026-02-16T10:18:00+00:00",
                    "restarts": 0,
                    "last_error": None,
                    "serving": {"error": "BTCUSDT: its model deployment is not reachable (KeyError)"},
                    "alarm": None,
                    "last_training": None,
                    "next_training": None,
                    "training": {
                        "last": None,
                        "current": None,
                        "next": None,
                        "history_days": 14.02,
                        "needs_days": 14.0,
                        "note": "first training queued",
                        "scheduler": {
                            "running": True,
                            "heartbeat_at": "2026-03-02T10:41:59+00:00",
                            "started_at": "2026-03-02T09:00:00+00:00",
                            "message": None,
                        },
                    },
                    "live_skill": {"window_minutes": 1440, "horizons": {}},
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    status: str
    backfill: Backfill
    completeness_percent: float | None = Field(description="stored minutes of those the exchange traded")
    stored_minutes: int
    first_candle_time: datetime | None
    restarts: int
    last_error: str | None
    serving: Serving
    alarm: Alarm | None
    last_training: datetime | None
    next_training: datetime | None
    training: TrainingPlan
    live_skill: LiveSkill
    freshness: Freshness


# --- market data ----------------------------------------------------------------------------------
CandleRow = tuple[datetime, float, float, float, float, float, float, int, str]
BookRow = tuple[datetime, float, float, float, float, bool]


class Candles(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "start": "2026-03-02T10:40:00+00:00",
                    "end": "2026-03-02T10:42:00+00:00",
                    "columns": [*CANDLE_COLUMNS],
                    "next_start": None,
                    "candles": [
                        [
                            "2026-03-02T10:40:00+00:00",
                            64012.5,
                            64050.0,
                            63990.1,
                            64031.0,
                            12.4,
                            794000.2,
                            1830,
                            "websocket",
                        ],
                        [
                            "2026-03-02T10:41:00+00:00",
                            64031.0,
                            64060.0,
                            64020.0,
                            64044.9,
                            9.8,
                            627600.5,
                            1411,
                            "websocket",
                        ],
                    ],
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    start: datetime
    end: datetime
    columns: list[str] = Field(description="what each candle's values are, in order")
    next_start: datetime | None = Field(
        description="where the next page starts, when this one was cut by limit"
    )
    candles: list[CandleRow] = Field(description="oldest first: open time, OHLC, volumes, trades, provenance")
    freshness: Freshness


class TopOfBook(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "start": "2026-03-02T10:41:00+00:00",
                    "end": "2026-03-02T10:42:00+00:00",
                    "columns": ["minute", "bid_price", "bid_qty", "ask_price", "ask_qty", "derived"],
                    "top_of_book": [["2026-03-02T10:41:00+00:00", 64044.8, 1.2, 64044.9, 0.7, False]],
                    "next_start": None,
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    start: datetime
    end: datetime
    columns: list[str]
    top_of_book: list[BookRow] = Field(
        description="per minute: best bid and ask; derived: made from a candle"
    )
    next_start: datetime | None
    freshness: Freshness


# --- predictions ----------------------------------------------------------------------------------
class ModelRef(Answer):
    kind: str
    version: int


class Prediction(Answer):
    origin_time: datetime = Field(description="the last candle the forecast saw")
    target_time: datetime
    horizon: int = Field(description="minutes ahead")
    predicted: float
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    actual: float | None = Field(description="the close at target_time, once stored")
    error: float | None = Field(description="actual − predicted")
    model: ModelRef
    served: bool = Field(description="false: a shadow model's")
    late: bool = Field(description="made while catching up on missed candles")
    made_at: datetime


_PREDICTION_EXAMPLE: JsonDict = {
    "origin_time": "2026-03-02T10:41:00+00:00",
    "target_time": "2026-03-02T10:46:00+00:00",
    "horizon": 5,
    "predicted": 64051.2,
    "lower_80": 63990.0,
    "upper_80": 64112.4,
    "lower_95": 63950.3,
    "upper_95": 64152.1,
    "actual": None,
    "error": None,
    "model": {"kind": "lstm", "version": 3},
    "served": True,
    "late": False,
    "made_at": "2026-03-02T10:42:00.420000+00:00",
}


class Predictions(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "start": "2026-03-02T09:42:00+00:00",
                    "end": "2026-03-02T10:42:00+00:00",
                    "predictions": [_PREDICTION_EXAMPLE],
                    "next_start": None,
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    start: datetime
    end: datetime
    predictions: list[Prediction] = Field(description="by origin, served first, then by horizon")
    next_start: datetime | None
    freshness: Freshness


class LatestPredictions(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "origin_time": "2026-03-02T10:41:00+00:00",
                    "predictions": [_PREDICTION_EXAMPLE],
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    origin_time: datetime
    predictions: list[Prediction] = Field(description="the served forecast, every horizon")
    freshness: Freshness


class ForecastHorizon(Answer):
    horizon: int
    target_time: datetime
    predicted: float
    lower_80: float | None
    upper_80: float | None
    lower_95: float | None
    upper_95: float | None
    source: str = Field(description="the model that made this horizon: persistence or lstm")


class ForecastValues(Answer):
    origin_time: datetime
    origin_ms: int
    close: float = Field(description="the close at the origin")
    horizons: list[ForecastHorizon]


class Forecast(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "forecast": {
                        "origin_time": "2026-03-02T10:41:00+00:00",
                        "origin_ms": 1772448060000,
                        "close": 64044.9,
                        "horizons": [
                            {
                                "horizon": 1,
                                "target_time": "2026-03-02T10:42:00+00:00",
                                "predicted": 64044.9,
                                "lower_80": 64010.2,
                                "upper_80": 64079.6,
                                "lower_95": 63991.8,
                                "upper_95": 64098.0,
                                "source": "persistence",
                            }
                        ],
                    },
                    "models": {"persistence": None, "lstm": None, "shadow": None},
                    "alarm": None,
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    forecast: ForecastValues
    models: ServedModels
    alarm: Alarm | None
    freshness: Freshness


class HourGroups(Answer):
    coverage: list[float | None] = Field(description="per UTC hour of the origin (null: no origin then)")
    se: list[float]
    n: list[int]


class LiveBand(Answer):
    nominal: float
    coverage: float | None
    coverage_se: float | None = Field(description="binomial SE of a calibrated band on n/h outcomes")
    interval_score_bps: float | None
    width_bps: float | None
    kupiec_p: float | None
    christoffersen_p: float | None
    backtest: dict[str, float | int | None] = Field(
        description="Kupiec and Christoffersen counts and statistics"
    )
    by_hour: HourGroups


class LiveHorizonScores(Answer):
    n: int
    n_effective: float = Field(description="n / h: independent outcomes")
    wis_bps: float | None = Field(description="weighted interval score, bps of the origin's close")
    bands: dict[str, LiveBand] = Field(description='by band: "80", "95"')


class Scores(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"symbol": "BTCUSDT", "window_minutes": 1440, "horizons": {}, "freshness": _FRESHNESS_EXAMPLE}
            ]
        }
    )

    symbol: str
    window_minutes: int
    horizons: dict[str, LiveHorizonScores] = Field(description="by horizon in minutes")
    freshness: Freshness


# --- models ---------------------------------------------------------------------------------------
class LiveScore(Answer):
    model_id: int
    kind: str
    version: int
    served: bool
    horizon: int
    n: int
    mae: float
    mae_persistence: float
    skill: float
    coverage_80: float | None
    coverage_95: float | None


class ModelVersion(Answer):
    id: int
    kind: str = Field(description="persistence or lstm")
    version: int
    status: str = Field(description="champion, shadow, retired, rejected, ...")
    reason: str | None = Field(description="why it has its status")
    trained_at: datetime | None
    data_start: datetime | None
    data_end: datetime | None
    served_horizons: list[int]
    artifact: bool = Field(description="whether a stored artifact holds it")
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any] = Field(description="val_skill, test scores, the gate per horizon, test_window")
    scores: dict[str, dict[str, Any]] = Field(
        description="per horizon, the test-window scores it was registered with ({} when none were)"
    )
    live: list[LiveScore] = Field(description="its live scores per horizon over the skill window")


class Models(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "versions": [
                        {
                            "id": 7,
                            "kind": "persistence",
                            "version": 1,
                            "status": "champion",
                            "reason": "baseline",
                            "trained_at": "2026-03-01T10:00:00+00:00",
                            "data_start": None,
                            "data_end": None,
                            "served_horizons": [1, 5, 15, 30],
                            "artifact": False,
                            "hyperparameters": {},
                            "metrics": {},
                            "scores": {},
                            "live": [],
                        }
                    ],
                    "freshness": _FRESHNESS_EXAMPLE,
                }
            ]
        }
    )

    symbol: str
    versions: list[ModelVersion]
    freshness: Freshness


# --- commands -------------------------------------------------------------------------------------
class CommandAccepted(Command):
    """A queued command: where to follow it, and whether a scheduler runs to carry it out."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [_COMMAND_EXAMPLE | {"command_id": 42, "scheduler": _SCHEDULER_EXAMPLE}]
        }
    )

    command_id: int
    scheduler: Scheduler


class CommandList(Answer):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"commands": [_COMMAND_EXAMPLE], "scheduler": _SCHEDULER_EXAMPLE}]}
    )

    commands: list[Command] = Field(description="newest first")
    scheduler: Scheduler


# --- health ---------------------------------------------------------------------------------------
class DatabaseCheck(Answer):
    ok: bool
    version: str | None = Field(None, description="the server's version, when it answered")
    error: str | None = None


class SupervisorCheck(Answer):
    ok: bool
    restarts_total: int | None = None
    pairs: int | None = Field(None, description="pairs it supervises")
    error: str | None = None


class ReplayInfo(Answer):
    recordings: dict[str, str] = Field(description="per pair, the recording it plays")
    shift: str
    speed: float


class ExchangeCheck(Answer):
    ok: bool
    url: str | None = Field(None, description="only for a public exchange")
    status: int | None = None
    error: str | None = None
    replay: ReplayInfo | None = Field(None, description="when the exchange replays recordings")


class PairHealth(Answer):
    status: str
    serving: str = Field(description="its Serve application's status, or NOT_DEPLOYED")
    ready: bool


class Health(Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checked_at": "2026-03-02T10:42:03+00:00",
                    "database": {"ok": True, "version": "PostgreSQL 16.4"},
                    "supervisor": {"ok": True, "restarts_total": 0, "pairs": 2},
                    "training": _SCHEDULER_EXAMPLE,
                    "exchange": {"ok": True, "status": 200},
                    "pairs": {"BTCUSDT": {"status": "live", "serving": "RUNNING", "ready": True}},
                }
            ]
        }
    )

    status: Literal["ok", "degraded"]
    checked_at: datetime
    database: DatabaseCheck
    supervisor: SupervisorCheck
    training: Scheduler | None = Field(description="null while the database is down")
    exchange: ExchangeCheck
    pairs: dict[str, PairHealth]


# --- status ---------------------------------------------------------------------------------------
class PairStatus(Answer):
    symbol: str
    status: str = Field(description="new, backfilling, live, paused, ...")
    data_lag_s: float | None = Field(description="exchange seconds since the newest candle closed")
    completeness_percent: float | None = Field(description="stored minutes of those expected, holes excluded")
    stored_minutes: int
    restarts: int
    last_candle_time: datetime | None
    last_error: str | None
    alarm: Alarm | None


class StatusList(Answer):
    """Every tracked pair's state at a glance, read in one query (``GET /status``)."""

    pairs: list[PairStatus]
    exchange_time: datetime | None = Field(description="the exchange's clock; null while it cannot be asked")
    as_of: datetime
