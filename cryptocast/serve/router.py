"""The HTTP API: a FastAPI ingress deployment in the router application.

Reads go straight to PostgreSQL; forecasts go to the pair's deployment, found by application name
(``pair_<SYMBOL>``); pair changes and retrains become command rows for ingestion and training to
carry out. Every answer that carries data has a ``freshness`` block: the model that made it, the
last candle and the data lag.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import aiohttp
import httpx
import numpy as np
import ray
from binance.exceptions import BinanceAPIException, BinanceRequestException
from fastapi import Body, Depends, Path, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from cryptocast.actors.commands import PairRejected, normalise_symbol, validate_pair
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.clock import WEEK_MS
from cryptocast.exchange.protocol import REPLAY_INFO_PATH, REPLAY_SPEED_HEADER
from cryptocast.serve import calibration, errors, metrics, reads, scoring, timeranges, training
from cryptocast.serve.auth import require_token
from cryptocast.serve.bodylimit import BodyLimit
from cryptocast.serve.config import PAIR_DEPLOYMENT, ServeOptions, pair_app_name
from cryptocast.serve.encoded import GZIP_LEVEL, GZIP_MIN_BYTES, Prepared, Renewing, dumps, encode, respond
from cryptocast.serve.errors import ApiError
from cryptocast.serve.exchangeclock import ExchangeClock, server_time
from cryptocast.serve.hotpath import HotApi
from cryptocast.serve.live import LivePredictor
from cryptocast.serve.microcache import MicroCache
from cryptocast.serve.ratelimit import limit_writes
from cryptocast.serve.runtime import replica_database
from cryptocast.settings import EXCHANGE_URLS, get_settings
from cryptocast.sql import command_queue
from cryptocast.sql.notices import listen
from cryptocast.sql.queries import submit_command
from cryptocast.sql.schema import CANDLES_CHANNEL, COMMAND_KINDS, COMMAND_STATUSES, PREDICTIONS_CHANNEL
from cryptocast.tune import registry
from cryptocast.tune.candles import OHLCV

log = logging.getLogger(__name__)

ROUTER_POOL = 10
CALL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
# Hot reads (the latest forecast, a page of candles) keep their data for at most REUSE_WALL_S, or
# until news of the pair (a candle landed, forecasts stored) ends them; their lag and exchange time
# are renewed every REUSE_EXCHANGE_S of exchange time. While the news cannot be heard, the data too
# are kept no longer than REUSE_EXCHANGE_S, so they stay that fresh on a fast replay.
REUSE_WALL_S = 0.5
REUSE_EXCHANGE_S = 1.0
CHAMPIONS_TTL_S = 1.0  # a pair's champions change daily at most; every answer names them
PAGE_TTL_S = 5.0  # a page of candles is keyed by the pair's last candle; this bounds a repair's wait
HEALTH_TTL_S = 1.0  # probes and dashboards poll /health; one check a second answers them all
SCORES_TTL_S = 5.0  # live scores change once a minute; dashboards poll them every few seconds
PUBLIC_REST_URLS = frozenset(rest for rest, _ in EXCHANGE_URLS.values())  # named in /health; others are not
MAX_WINDOW = 2000  # candles a caller may send to /predict
MAX_PRICE = 1e12
BACKFILLING = ("new", "backfilling")
PROBLEM_STATUS = {"no_model": 409, "not_enough_history": 409, "invalid_window": 422}


def new_api() -> HotApi:
    """The API's app: error handlers, gzip, request metrics, CORS when configured; no routes yet."""
    app = HotApi(
        title="cryptocast",
        version="1",
        description="Per-pair crypto price forecasts (1, 5, 15, 30 min) with 80/95 % intervals.",
    )
    errors.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    app.add_middleware(metrics.RequestMetrics)
    if get_settings().cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=get_settings().cors_origins,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])  # fmt: skip
    return app


api = new_api()
WRITES = [Depends(limit_writes), Depends(require_token)]  # routes that change state: the rate, then the token

Symbol = Annotated[str, Query(max_length=64)]
Start = Annotated[datetime | None, Query(description="inclusive, ISO 8601 (UTC if no offset)")]
End = Annotated[datetime | None, Query(description="exclusive, ISO 8601 (UTC if no offset)")]
Limit = Annotated[int, Query(ge=1, le=timeranges.MAX_LIMIT)]
ScoresWindow = Annotated[int | None, Query(
    ge=calibration.MIN_WINDOW_MINUTES, le=calibration.MAX_WINDOW_MINUTES,
    description="minutes of origins to score, ending at the newest candle [the live skill window]")]  # fmt: skip


class AddPair(BaseModel):
    symbol: str = Field(max_length=64, examples=["BTCUSDT"])


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


def reuse_s(rate: float) -> float:
    """Wall seconds a hot read may be reused when the exchange clock runs ``rate`` times local time."""
    return min(REUSE_WALL_S, REUSE_EXCHANGE_S / max(rate, 1e-6))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _clock_fields(fresh: dict, now_ms: float | None) -> dict:
    """The clock-driven part of ``freshness``: data lag and exchange time (None when unknown), and
    when the answer was made."""
    last = fresh["last_candle_time"]
    lag = None
    if last is not None and now_ms is not None:
        lag = round(max(0.0, now_ms / 1000 - (datetime.fromisoformat(last).timestamp() + 60)), 3)
    return {
        "data_lag_s": lag,
        "exchange_time": _iso(datetime.fromtimestamp(now_ms / 1000, UTC)) if now_ms is not None else None,
        "as_of": datetime.now(UTC).isoformat(),
    }


def _json(body: dict, request: Request | None = None) -> Response:
    """JSON with an ETag; a matching ``If-None-Match`` gets 304 without the body."""
    return respond(encode(body), request)


def _backfill(row: dict) -> dict:
    total = row["backfill_total"]
    return {
        "done": row["backfill_done"],
        "total": total,
        "percent": round(100.0 * row["backfill_done"] / total, 2) if total else None,
        "eta_s": row["backfill_eta_s"],
    }


def _symbol(text: str) -> str:
    try:
        return normalise_symbol(text)
    except PairRejected as exc:
        raise ApiError(422, str(exc)) from None


def _completeness(counts: dict) -> float | None:
    if not counts["stored"]:
        return None
    expected = int((counts["last"] - counts["first"]).total_seconds() // 60) + 1 - counts["holes"]
    return round(100.0 * counts["stored"] / expected, 3) if expected > 0 else 100.0


def _next(rows: list[dict], key: str, limit: int) -> str | None:
    """Where the next page starts, when this one was cut by ``limit``."""
    return (rows[-1][key] + timedelta(microseconds=1)).isoformat() if len(rows) == limit else None


def _prediction(r: dict) -> dict:
    actual = r["actual"]
    return {
        "origin_time": r["origin_time"].isoformat(), "target_time": r["target_time"].isoformat(),
        "horizon": r["horizon"], "predicted": r["predicted"], "lower_80": r["lower_80"], "upper_80": r["upper_80"],
        "lower_95": r["lower_95"], "upper_95": r["upper_95"], "actual": actual,
        "error": None if actual is None else actual - r["predicted"],
        "model": {"kind": r["kind"], "version": r["version"]}, "served": r["served"], "late": r["late"],
        "made_at": r["made_at"].isoformat(),
    }  # fmt: skip


async def _replay_details(client: httpx.AsyncClient, rest_url: str) -> dict:
    """Which recordings a replay exchange plays, shifted by how much, how fast (for the banner)."""
    info = (await client.get(rest_url.rstrip("/").removesuffix("/api") + REPLAY_INFO_PATH)).json()
    weeks = sorted({round(sym["shiftMs"] / WEEK_MS) for sym in info["symbols"].values()})
    return {
        "recordings": {name: sym["recording"] for name, sym in info["symbols"].items()},
        "shift": " / ".join(f"{w} weeks" for w in weeks),
        "speed": info["speed"],
    }


@serve.deployment(name="Router", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
@serve.ingress(api)
class Router:
    def __init__(self, options: dict, live: DeploymentHandle) -> None:
        get_settings().require_api_token()
        self.options = ServeOptions(**options)
        self.db = replica_database(self.options.database_url_file, ROUTER_POOL)
        self.live = live
        self.exchange: BinanceExchange | None = None
        self.clock: ExchangeClock | None = None
        self.latest_cache: MicroCache[Renewing] = MicroCache(REUSE_WALL_S)
        self.candles_cache: MicroCache[Renewing] = MicroCache(REUSE_WALL_S)  # keyed "<symbol> <request>"
        self.champions_cache: MicroCache[list] = MicroCache(CHAMPIONS_TTL_S)
        self.page_cache: MicroCache[Prepared] = MicroCache(PAGE_TTL_S)
        self.health_cache: MicroCache[tuple[int, bytes]] = MicroCache(HEALTH_TTL_S, stale=False)
        self.scores_cache: MicroCache[dict] = MicroCache(SCORES_TTL_S)  # keyed "<symbol id> <window>"
        self.hearing = False  # news of the pairs arrives (LISTEN is up): cached reads may last longer
        self.news = asyncio.get_event_loop().create_task(self._listen())

    # --- news -------------------------------------------------------------------------------------
    async def _listen(self) -> None:
        async def connected() -> None:
            self._forget(None)  # whatever changed while nobody listened
            self.hearing = True

        def lost(_reason: str) -> None:
            self.hearing = False

        await listen(self.db.url, {CANDLES_CHANNEL: self._on_news, PREDICTIONS_CHANNEL: self._on_news}, connected, lost)

    def _on_news(self, note: dict) -> None:
        """A candle landed or forecasts were stored: the pair's cached reads end now."""
        self._forget(note["symbol"])
        metrics.news.labels(note["symbol"]).inc()

    def _forget(self, symbol: str | None) -> None:
        """End the cached reads of ``symbol`` (None: of every pair)."""

        def match(key: str) -> bool:
            return symbol is None or key == symbol or key.startswith(symbol + " ")

        self.latest_cache.drop(match)
        self.candles_cache.drop(match)
        api.hot.drop(symbol)

    # --- helpers ----------------------------------------------------------------------------------
    async def _pair(self, text: str) -> dict:
        symbol = _symbol(text)
        row = await reads.fetchrow(self.db, reads.PAIR_SQL, symbol)
        if row is None:
            raise ApiError(404, f"{symbol} is not tracked (add it with POST /pairs)")
        return row

    async def _freshness(self, row: dict) -> dict:
        fresh = await self._data_freshness(row)
        return fresh | _clock_fields(fresh, await self._exchange_now_ms())

    async def _data_freshness(self, row: dict) -> dict:
        """The part of ``freshness`` that changes with the data: the models and the last candle."""
        champions = await self.champions_cache.get(
            str(row["id"]), lambda: reads.fetch(self.db, reads.CHAMPIONS_SQL, row["id"])
        )
        models = [
            {"kind": c["kind"], "version": c["version"], "trained_at": _iso(c["trained_at"]),
             "served_horizons": json.loads(c["served_horizons"]) if c["served_horizons"] else None}
            for c in champions
        ]  # fmt: skip
        return {"models": models, "last_candle_time": _iso(row["last_candle_time"])}

    async def _renewing(self, row: dict, prepared: Prepared) -> Renewing:
        """A cached read whose lag and exchange time are renewed each exchange second (encoded.py)."""
        await self._exchange_now_ms()  # asks the exchange when its last answer is old
        clock = self.clock

        def stamp(fresh: dict) -> dict:
            return _clock_fields(fresh, clock.estimate_ms() if clock is not None else None)

        return Renewing(prepared, await self._data_freshness(row), stamp, self._reuse_s)

    async def _exchange_now_ms(self) -> float | None:
        """The exchange's clock (lag is on its time axis); None while the exchange cannot be asked."""
        if self.clock is None:
            self.clock = ExchangeClock(server_time(await self._exchange()))
        try:
            return await asyncio.wait_for(self.clock.now_ms(), PROBE_TIMEOUT_S)
        except (
            OSError,
            TimeoutError,
            aiohttp.ClientError,
            BinanceAPIException,
            BinanceRequestException,
            KeyError,
        ):
            return None

    def _reuse_s(self) -> float:
        """How long an answer's clock fields stand: one exchange second, at most REUSE_WALL_S."""
        return reuse_s(self.clock.rate if self.clock is not None else 1.0)

    def _keep_s(self) -> float:
        """How long a hot read's data stand: until news ends them, or one exchange second unheard."""
        return REUSE_WALL_S if self.hearing else self._reuse_s()

    async def _hot_read(self, cache: MicroCache[Renewing], key: str, pair: str,
                        make: Callable[[], Awaitable[Renewing]], request: Request) -> Renewing:  # fmt: skip
        """A cached read, also put where the hot path answers this exact request before FastAPI until
        it ends (hotpath.py); the hot path calls this again in the background to renew it."""
        answer = await cache.get(key, make, self._keep_s())
        fresh, stale = cache.window(key)
        request.app.hot.put(request.scope, answer, fresh, pair, lambda: self._hot_read(cache, key, pair, make, request),
                            stale)  # fmt: skip
        return answer

    def _conflict_if_backfilling(self, row: dict) -> None:
        if row["status"] in BACKFILLING:
            b = _backfill(row)
            eta = f", about {b['eta_s']:.0f} s left" if b["eta_s"] is not None else ""
            pct = f"{b['percent']:.1f} % done" if b["percent"] is not None else "starting"
            raise ApiError(
                409, f"{row['symbol']} is still backfilling ({pct}{eta})", "backfilling", progress=b
            )

    def _handle(self, symbol: str) -> DeploymentHandle:
        return serve.get_deployment_handle(PAIR_DEPLOYMENT, app_name=pair_app_name(symbol))

    async def _call(self, symbol: str, method: str, *args: Any) -> dict:
        try:
            ref = getattr(self._handle(symbol), method).remote(*args)
            return await asyncio.wait_for(ref, CALL_TIMEOUT_S)
        except (KeyError, ValueError, ray.exceptions.RayError, TimeoutError) as exc:
            raise ApiError(
                503, f"{symbol}: its model deployment is not reachable ({type(exc).__name__})"
            ) from None

    # --- system -----------------------------------------------------------------------------------
    @api.get("/health", summary="Database, supervisor, exchange and per-pair readiness (checked once a second)")
    async def health(self) -> Response:
        status, body = await self.health_cache.get("health", self._health)
        return Response(body, status, media_type="application/json")

    async def _health(self) -> tuple[int, bytes]:
        """The checks behind /health, shared by every caller for HEALTH_TTL_S; where the database
        and the exchange are (user, host, port) goes to the server log, never into the answer."""
        checks: dict[str, Any] = {}
        try:
            checks["database"] = {"ok": True, "version": await self.db.check()}
        except Exception as exc:
            log.warning("health: %s", exc)
            checks["database"] = {"ok": False, "error": errors.DATABASE_DOWN}
        checks["supervisor"] = await self._supervisor()
        checks["training"] = await training.scheduler_view(self.db) if checks["database"]["ok"] else None
        checks["exchange"] = await self._exchange_ping()
        apps = {n: a.status for n, a in (await asyncio.to_thread(serve.status)).applications.items()}
        pairs = {}
        if checks["database"]["ok"]:
            for row in await reads.fetch(self.db, reads.PAIRS_SQL):
                state = apps.get(pair_app_name(row["symbol"]), "NOT_DEPLOYED")
                pairs[row["symbol"]] = {
                    "status": row["status"], "serving": state,
                    "ready": row["status"] == "live" and state == "RUNNING",
                }  # fmt: skip
        ok = checks["database"]["ok"]
        body = {"status": "ok" if ok else "degraded", "checked_at": datetime.now(UTC).isoformat(), **checks,
                "pairs": pairs}  # fmt: skip
        return 200 if ok else 503, json.dumps(body, default=str).encode()

    async def _supervisor(self) -> dict:
        try:
            actor = ray.get_actor("supervisor", namespace="cryptocast")
            snap = await asyncio.wait_for(actor.snapshot.remote(), PROBE_TIMEOUT_S)
            return {"ok": True, "restarts_total": snap["restarts_total"], "pairs": len(snap["pairs"])}
        except ValueError:
            return {"ok": False, "error": "not running (ingestion is stopped)"}
        except Exception as exc:
            log.warning("health: the supervisor did not answer: %r", exc)
            return {"ok": False, "error": f"it did not answer ({type(exc).__name__})"}

    async def _exchange_ping(self) -> dict:
        rest_url = self.options.rest_url.rstrip("/")
        where = {"url": rest_url} if rest_url in PUBLIC_REST_URLS else {}  # a replay's or a proxy's stays here
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
                reply = await client.get(rest_url + "/v3/ping")
                answer = {"ok": reply.status_code == 200, **where, "status": reply.status_code}
                if REPLAY_SPEED_HEADER in reply.headers:  # the exchange says it replays recordings
                    answer["replay"] = await _replay_details(client, rest_url)
            return answer
        except httpx.HTTPError as exc:
            log.warning("health: the exchange at %s did not answer: %r", rest_url, exc)
            return {"ok": False, **where, "error": f"it did not answer ({type(exc).__name__})"}

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus(self) -> Response:
        now_ms = await self._exchange_now_ms()
        for row in await reads.fetch(self.db, reads.PAIRS_SQL):
            if row["last_candle_time"] is not None and now_ms is not None:
                age = now_ms / 1000 - row["last_candle_time"].timestamp() - 60
                metrics.last_candle_age.labels(row["symbol"]).set(age)
            total = row["backfill_total"]
            metrics.backfill_done.labels(row["symbol"]).set(row["backfill_done"] / total if total else 0.0)
        try:
            stats = await asyncio.wait_for(self.live.stats.remote(), PROBE_TIMEOUT_S)
            for name, value in stats["counts"].items():
                metrics.live.labels(name).set(value)
            if stats["store_latency_s"]["p99"] is not None:
                metrics.store_p99.set(stats["store_latency_s"]["p99"])
        except Exception:  # the live predictor restarting must not break scraping
            pass
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    # --- pairs ------------------------------------------------------------------------------------
    @api.get("/pairs", summary="Tracked pairs")
    async def pairs(self) -> Response:
        rows = await reads.fetch(self.db, reads.PAIRS_SQL)
        return _json({
            "pairs": [
                {"symbol": r["symbol"], "status": r["status"], "last_candle_time": _iso(r["last_candle_time"]),
                 "backfill": _backfill(r), "restarts": r["restarts"], "last_error": r["last_error"]}
                for r in rows
            ],
            "as_of": datetime.now(UTC).isoformat(),
        })  # fmt: skip

    @api.post("/pairs", status_code=202, dependencies=WRITES, summary="Track a new pair")
    async def add_pair(self, body: AddPair) -> Response:
        symbol = _symbol(body.symbol)
        row = await reads.fetchrow(self.db, reads.PAIR_SQL, symbol)
        if row is not None and row["status"] != "removed":
            raise ApiError(409, f"{symbol} is already tracked (status {row['status']})", "already_tracked")
        pending = [
            c for c in await reads.fetch(self.db, reads.OPEN_COMMANDS_SQL, symbol) if c["kind"] == "add_pair"
        ]
        if pending:
            raise ApiError(
                409, f"{symbol} was already requested (command {pending[0]['id']})", "already_requested"
            )
        try:
            info = await validate_pair(await self._exchange(), symbol)
        except PairRejected as exc:
            raise ApiError(404, str(exc), "unknown_symbol") from None
        except (OSError, httpx.HTTPError) as exc:
            raise ApiError(503, f"cannot reach the exchange at {self.options.rest_url}: {exc}") from None
        command = await submit_command(self.db, "add_pair", info.symbol)
        return Response(json.dumps({"symbol": info.symbol, "base_asset": info.base_asset,
                                    "quote_asset": info.quote_asset, "command_id": command, "status": "requested"}),
                        202, media_type="application/json")  # fmt: skip

    async def _exchange(self) -> BinanceExchange:
        if self.exchange is None:
            self.exchange = BinanceExchange(
                rest_url=self.options.rest_url, stream_url=self.options.stream_url
            )
        return self.exchange

    @api.delete("/pairs/{symbol}", status_code=202, dependencies=WRITES,
                summary="Stop ingesting a pair (data kept; purge=true&confirm=SYMBOL deletes them)")  # fmt: skip
    async def remove_pair(self, symbol: str, purge: bool = False, confirm: Annotated[str | None, Query(
            max_length=64, description="purge only: the pair's symbol again")] = None) -> Response:  # fmt: skip
        pair = _symbol(symbol)
        if purge and (confirm or "").strip().upper() != pair:
            raise ApiError(400, f"purging {pair} deletes its stored candles, predictions and models; to confirm, "
                                f"send DELETE /pairs/{pair}?purge=true&confirm={pair}", "confirmation_required")  # fmt: skip
        row = await self._pair(pair)
        kind = "purge_pair" if purge else "remove_pair"
        command = await submit_command(self.db, kind, row["symbol"])
        return Response(json.dumps({"symbol": row["symbol"], "command_id": command, "kind": kind}), 202,
                        media_type="application/json")  # fmt: skip

    @api.get("/pairs/{symbol}", summary="A pair's state, progress, model and live accuracy")
    async def pair(self, symbol: str) -> Response:
        row = await self._pair(symbol)
        sid = row["id"]
        counts = await reads.fetchrow(self.db, reads.COMPLETENESS_SQL, sid)
        serving = await self._serving(row["symbol"])
        live = scoring.served_summary(await scoring.scores(self.db, sid, self.options.skill_window_minutes))
        last_training = await reads.fetchval(self.db, reads.LAST_TRAINING_SQL, sid)
        plan = await training.pair_training(self.db, sid, row["symbol"], row["status"])
        return _json({
            "symbol": row["symbol"], "status": row["status"], "backfill": _backfill(row),
            "completeness_percent": _completeness(counts), "stored_minutes": counts["stored"],
            "first_candle_time": _iso(counts["first"]), "restarts": row["restarts"], "last_error": row["last_error"],
            "serving": serving, "alarm": serving.get("alarm"),
            "last_training": _iso(last_training), "next_training": plan["next"]["at"] if plan["next"] else None,
            "training": plan,
            "live_skill": {"window_minutes": self.options.skill_window_minutes, "horizons": live},
            "freshness": await self._freshness(row),
        })  # fmt: skip

    @api.get("/pairs/{symbol}/scores",
             summary="Live scores of the served bands: interval score, coverage ± SE, Kupiec, by UTC hour")  # fmt: skip
    async def scores(self, symbol: str, window_minutes: ScoresWindow = None) -> Response:
        row = await self._pair(symbol)
        window = window_minutes or self.options.skill_window_minutes
        horizons = await self.scores_cache.get(
            f"{row['id']} {window}", lambda: calibration.live_scores(self.db, row["id"], window)
        )
        return _json({"symbol": row["symbol"], "window_minutes": window, "horizons": horizons,
                      "freshness": await self._freshness(row)})  # fmt: skip

    async def _serving(self, symbol: str) -> dict:
        try:
            return await self._call(symbol, "status")
        except ApiError as exc:
            return {"alarm": None, "error": exc.message}

    # --- data -------------------------------------------------------------------------------------
    @api.get("/pairs/{symbol}/candles", summary="1-minute candles in [start, end), oldest first, paged")
    async def candles(self, symbol: str, request: Request, start: Start = None, end: End = None,
                      limit: Limit = timeranges.DEFAULT_LIMIT) -> Response:  # fmt: skip
        pair = _symbol(symbol)
        key = f"{pair} {_iso(start)} {_iso(end)} {limit}"  # the same request is answered alike until news
        answer = await self._hot_read(self.candles_cache, key, pair, lambda: self._candles(symbol, start, end, limit),
                                      request)  # fmt: skip
        return respond(answer.current(), request)

    async def _candles(self, symbol: str, start: datetime | None, end: datetime | None, limit: int) -> Renewing:
        row = await self._pair(symbol)
        lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.CANDLES)
        # The rows change when a candle lands; until then identical reads share one serialised page.
        key = f"{row['id']} {lo.isoformat()} {hi.isoformat()} {limit} {row['last_candle_time']}"
        page = await self.page_cache.get(key, lambda: self._candle_page(row, lo, hi, limit))
        return await self._renewing(row, page)

    async def _candle_page(self, row: dict, lo: datetime, hi: datetime, limit: int) -> Prepared:
        rows = await reads.page(self.db, reads.CANDLES_SQL, row["id"], lo, hi, limit)
        items = [[r["open_time"].isoformat(), r["open"], r["high"], r["low"], r["close"], r["volume"],
                  r["quote_volume"], r["trades"], r["provenance"]] for r in rows]  # fmt: skip
        return Prepared({
            "symbol": row["symbol"], "start": lo.isoformat(), "end": hi.isoformat(),
            "columns": ["open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades", "provenance"],
            "next_start": _next(rows, "open_time", limit),
        }, {"candles": dumps(items)})  # fmt: skip

    @api.get("/pairs/{symbol}/top-of-book", summary="Best bid/ask per minute in [start, end), paged")
    async def top_of_book(self, symbol: str, request: Request, start: Start = None, end: End = None,
                          limit: Limit = timeranges.DEFAULT_LIMIT) -> Response:  # fmt: skip
        row = await self._pair(symbol)
        lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.CANDLES)
        rows = await reads.page(self.db, reads.BOOK_SQL, row["id"], lo, hi, limit)
        items = [[r["minute"].isoformat(), r["bid_price"], r["bid_qty"], r["ask_price"], r["ask_qty"], r["derived"]]
                 for r in rows]  # fmt: skip
        return _json({
            "symbol": row["symbol"], "start": lo.isoformat(), "end": hi.isoformat(),
            "columns": ["minute", "bid_price", "bid_qty", "ask_price", "ask_qty", "derived"],
            "top_of_book": items, "next_start": _next(rows, "minute", limit), "freshness": await self._freshness(row),
        }, request)  # fmt: skip

    @api.get(
        "/pairs/{symbol}/predictions",
        summary="Stored predictions by origin, with the actual close once known",
    )
    async def predictions(self, symbol: str, request: Request, start: Start = None, end: End = None,
                          limit: Limit = timeranges.DEFAULT_LIMIT, shadow: bool = False) -> Response:  # fmt: skip
        row = await self._pair(symbol)
        lo, hi = timeranges.resolve(start, end, row["last_candle_time"], timeranges.PREDICTIONS)
        rows = await reads.fetch(self.db, reads.PREDICTIONS_SQL, row["id"], lo, hi, limit, shadow)
        return _json({
            "symbol": row["symbol"], "start": lo.isoformat(), "end": hi.isoformat(),
            "predictions": [_prediction(r) for r in rows], "next_start": _next(rows, "origin_time", limit),
            "freshness": await self._freshness(row),
        }, request)  # fmt: skip

    @api.get("/pairs/{symbol}/predictions/latest", summary="The newest stored forecast, every horizon")
    async def latest(self, symbol: str, request: Request) -> Response:
        key = _symbol(symbol)
        answer = await self._hot_read(self.latest_cache, key, key, lambda: self._latest(symbol), request)
        return respond(answer.current(), request)

    async def _latest(self, symbol: str) -> Renewing:
        row = await self._pair(symbol)
        origin = await reads.fetchval(self.db, reads.LATEST_ORIGIN_SQL, row["id"])
        if origin is None:
            self._conflict_if_backfilling(row)
            raise ApiError(409, f"{row['symbol']} has no prediction yet: the first comes after its first model",
                           "no_prediction")  # fmt: skip
        rows = await reads.fetch(self.db, reads.PREDICTIONS_SQL, row["id"], origin, origin + timedelta(minutes=1),
                                 timeranges.MAX_LIMIT, False)  # fmt: skip
        return await self._renewing(row, Prepared({
            "symbol": row["symbol"], "origin_time": origin.isoformat(), "predictions": [_prediction(r) for r in rows],
        }))  # fmt: skip

    @api.post(
        "/pairs/{symbol}/predict", summary="Forecast now, from your window or the newest stored candles"
    )
    async def predict(self, symbol: str, body: Annotated[PredictIn | None, Body()] = None) -> Response:
        row = await self._pair(symbol)
        candles = request_columns(body.candles) if body is not None and body.candles is not None else None
        if candles is None:
            self._conflict_if_backfilling(row)
        answer = await self._call(row["symbol"], "predict", candles)
        if "error" in answer:
            raise ApiError(PROBLEM_STATUS.get(answer["error"], 503), answer["message"], answer["error"])
        answer["freshness"] = await self._freshness(row)
        return _json(answer)

    # --- models -----------------------------------------------------------------------------------
    @api.post("/pairs/{symbol}/retrain", status_code=202, dependencies=WRITES,
              summary="Queue a retrain of this pair; follow it at GET /commands/{id}")  # fmt: skip
    async def retrain(self, symbol: str) -> Response:
        row = await self._pair(symbol)
        self._conflict_if_backfilling(row)
        command = await command_queue.submit_training(self.db, "retrain", row["symbol"], "request",
                                                      "requested through the API")  # fmt: skip
        if command is None:
            open_ = await command_queue.open_training(self.db, row["symbol"])
            if open_ is None:  # it ended between the insert and this read
                raise ApiError(409, f"a training of {row['symbol']} just ended; ask again", "already_requested")
            raise ApiError(409, f"a {open_['kind']} of {row['symbol']} is already {open_['status']} (command "
                                f"{open_['id']}); follow it at /commands/{open_['id']}", "already_requested",
                           command=command_queue.view(open_))  # fmt: skip
        return await self._accepted(command)

    @api.post("/pairs/{symbol}/rollback", status_code=202, dependencies=WRITES,
              summary="Restore the pair's previous LSTM champion (or persistence alone); a command")  # fmt: skip
    async def rollback(self, symbol: str) -> Response:
        row = await self._pair(symbol)
        if await registry.current(self.db, row["id"], "lstm") is None:
            raise ApiError(409, f"{row['symbol']} has no LSTM champion to roll back", "no_champion")
        command = await submit_command(self.db, "rollback", row["symbol"], trigger="request",
                                       reason="requested through the API")  # fmt: skip
        return await self._accepted(command)

    async def _accepted(self, command_id: int) -> Response:
        """202 for a queued command: where to follow it, and whether anything is there to run it."""
        row = await command_queue.get(self.db, command_id)
        body = command_queue.view(row) | {"command_id": command_id, "scheduler": await training.scheduler_view(self.db)}
        return Response(json.dumps(body), 202, media_type="application/json", headers={"Location": body["url"]})

    # --- commands ---------------------------------------------------------------------------------
    @api.get("/commands", summary="Commands, newest first: pair changes, trainings, rollbacks and their outcome")
    async def commands(
        self, symbol: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
        kind: Annotated[str | None, Query(max_length=24)] = None,
        limit: Annotated[int, Query(ge=1, le=command_queue.LIST_LIMIT)] = 20,
    ) -> Response:  # fmt: skip
        if status is not None and status not in COMMAND_STATUSES:
            raise ApiError(422, f"status must be one of {', '.join(COMMAND_STATUSES)}")
        if kind is not None and kind not in COMMAND_KINDS:
            raise ApiError(422, f"kind must be one of {', '.join(COMMAND_KINDS)}")
        rows = await command_queue.find(self.db, _symbol(symbol) if symbol else None, status, kind, limit)
        return _json({"commands": [command_queue.view(r) for r in rows],
                      "scheduler": await training.scheduler_view(self.db)})  # fmt: skip

    @api.get("/commands/{command_id}", summary="One command: status, progress while running, result or reason")
    async def command(self, command_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
        row = await command_queue.get(self.db, command_id)
        if row is None:
            raise ApiError(404, f"no command {command_id}")
        return _json(command_queue.view(row))

    @api.get("/models/{symbol}", summary="Model versions, status, metrics and live scores")
    async def models(self, symbol: str) -> Response:
        row = await self._pair(symbol)
        live = await scoring.scores(self.db, row["id"], self.options.skill_window_minutes)
        by_model: dict[int, list[dict]] = {}
        for s in live:
            by_model.setdefault(s.model_id, []).append(s.to_dict())
        versions = [
            {"id": r.id, "kind": r.kind, "version": r.version, "status": r.status, "reason": r.status_reason,
             "trained_at": _iso(r.trained_at), "data_start": _iso(r.data_start), "data_end": _iso(r.data_end),
             "served_horizons": r.served_horizons, "artifact": r.artifact_uri is not None,
             "hyperparameters": r.hyperparameters,
             "metrics": {k: v for k, v in r.metrics.items() if k in ("val_skill", "test", "gate", "test_window")},
             "scores": calibration.training_view(r.metrics),
             "live": by_model.get(r.id, [])}
            for r in await registry.records(self.db, row["id"])
        ]  # fmt: skip
        return _json({"symbol": row["symbol"], "versions": versions, "freshness": await self._freshness(row)})


def app(args: dict) -> serve.Application:
    """Application builder (``import_path`` of the router application)."""
    return Router.bind(args, LivePredictor.bind(args))
