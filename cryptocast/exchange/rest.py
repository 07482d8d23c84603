"""The REST half of the replay: ``/api/v3`` market-data routes with Binance's weights and errors.

Every ``/api`` request passes one middleware: injected latency, the weight limiter (429/418 with
``Retry-After``), injected 5xx, then the route; every response carries ``X-MBX-USED-WEIGHT-1M`` and
the replay headers (exchange now, speed, and the symbol's time shift where a symbol is named).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable

import numpy as np
from aiohttp import web

from cryptocast.exchange.bars import BINANCE_INTERVALS, SUPPORTED_INTERVALS, fmt
from cryptocast.exchange.faults import Faults
from cryptocast.exchange.market import (
    DERIVED_FIELDS,
    STATUS_BREAK,
    STATUS_HALT,
    STATUS_TRADING,
    Market,
    ReplaySymbol,
)
from cryptocast.exchange.protocol import (
    CLONE_KEY,
    CLONE_OF_KEY,
    DERIVED_KEY,
    REPLAY_NOW_HEADER,
    REPLAY_SHIFT_HEADER,
    REPLAY_SPEED_HEADER,
    USED_WEIGHT_HEADER,
)
from cryptocast.exchange.ratelimit import WeightLimiter

DEFAULT_KLINES_LIMIT = 500
MAX_KLINES_LIMIT = 1000
WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 20, "klines": 2, "ticker/bookTicker": 2}
BOOK_TICKER_MANY_WEIGHT = 4
BASE_PRECISION = QUOTE_PRECISION = 8
MAX_QTY = 9_000_000.0
SYMBOL_PATTERN = "^[A-Z0-9-_.]{1,20}$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
SERVER_ERRORS = (
    (500, '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'),
    (502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (
        503,
        '{"code":-1008,"msg":"Server is currently overloaded with other requests. Please try again in a few minutes."}',
    ),
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A Binance error answer: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def missing(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, pattern: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'.")


def error_response(code: int, msg: str, status: int) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _int_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    if not re.fullmatch(r"-?[0-9]{1,20}", text):
        raise illegal(name, "^[0-9]{1,20}$")
    return int(text)


class RestApi:
    def __init__(self, market: Market, limiter: WeightLimiter, faults: Faults) -> None:
        self.market = market
        self.limiter = limiter
        self.faults = faults

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/ticker/bookTicker", self.book_ticker),
        ]

    # --- middleware -----------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        if self.faults.latency_ms > 0:
            await asyncio.sleep(self.faults.latency_ms / 1000.0)
        address = request.remote or "?"
        verdict = self.limiter.charge(address, self._weight(request))
        response: web.StreamResponse
        if verdict.status == 429:
            response = error_response(
                -1003,
                f"Too much request weight used; current limit is {self.limiter.limit} request weight per 1 MINUTE. "
                "Please use WebSocket Streams for live updates to avoid polling the API.",
                429,
            )
            response.headers["Retry-After"] = str(verdict.retry_after_s)
        elif verdict.status == 418:
            until = self.limiter.wall() + verdict.retry_after_s * 1000
            response = error_response(
                -1003,
                f"Way too much request weight used; IP banned until {until}. "
                "Please use WebSocket Streams for live updates to avoid bans.",
                418,
            )
            response.headers["Retry-After"] = str(verdict.retry_after_s)
        elif self.faults.chance(self.faults.rest_error_rate):
            status, body = self.faults.rng.choice(SERVER_ERRORS)
            kind = "application/json" if body.startswith("{") else "text/html"
            response = web.Response(status=status, text=body, content_type=kind)
        else:
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc.code, exc.msg, exc.status)
        response.headers[USED_WEIGHT_HEADER] = str(verdict.used_weight)
        response.headers["X-MBX-USED-WEIGHT"] = str(verdict.used_weight)
        response.headers[REPLAY_NOW_HEADER] = str(self.market.clock.now())
        response.headers[REPLAY_SPEED_HEADER] = str(self.market.clock.speed)
        return response

    def _weight(self, request: web.Request) -> int:
        route = request.path.removeprefix("/api/v3/")
        if route == "ticker/bookTicker" and "symbol" not in request.query:
            return BOOK_TICKER_MANY_WEIGHT
        return WEIGHTS.get(route, 1)

    # --- parameters -----------------------------------------------------------------------------
    def _symbol(self, text: str | None) -> ReplaySymbol:
        if not text:
            raise missing("symbol")
        if not SYMBOL_RE.match(text):
            raise illegal("symbol", SYMBOL_PATTERN)
        sym = self.market.get(text)
        if sym is None:
            raise ApiError(-1121, "Invalid symbol.")
        return sym

    def _symbols(self, request: web.Request) -> list[ReplaySymbol] | None:
        """``symbol=X`` or ``symbols=["X","Y"]`` → those symbols; neither → None (all)."""
        if "symbol" in request.query and "symbols" in request.query:
            raise ApiError(-1106, "Parameter 'symbols' sent when not required.")
        if "symbol" in request.query:
            return [self._symbol(request.query["symbol"])]
        if "symbols" not in request.query:
            return None
        try:
            names = json.loads(request.query["symbols"])
        except ValueError:
            raise illegal("symbols", SYMBOL_PATTERN) from None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise missing("symbols")
        return [self._symbol(n) for n in names]

    def status(self, sym: ReplaySymbol, now: int) -> str:
        if not sym.is_live(now):
            return STATUS_BREAK
        if self.faults.is_halted(sym.symbol):
            return STATUS_HALT
        return STATUS_TRADING

    # --- routes ---------------------------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.market.clock.now()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        chosen = self._symbols(request)
        now = self.market.clock.now()
        symbols = chosen if chosen is not None else list(self.market.symbols.values())
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": self.limiter.limit,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [self._symbol_info(sym, now) for sym in symbols],
            }
        )

    def _symbol_info(self, sym: ReplaySymbol, now: int) -> dict:
        max_price = 10.0 ** math.ceil(math.log10(float(np.max(sym.h)) * 100))
        return {
            "symbol": sym.symbol,
            "status": self.status(sym, now),
            "baseAsset": sym.base,
            "baseAssetPrecision": BASE_PRECISION,
            "quoteAsset": sym.quote,
            "quotePrecision": QUOTE_PRECISION,
            "quoteAssetPrecision": QUOTE_PRECISION,
            "baseCommissionPrecision": BASE_PRECISION,
            "quoteCommissionPrecision": QUOTE_PRECISION,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(sym.tick),
                    "maxPrice": fmt(max_price),
                    "tickSize": fmt(sym.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(sym.lot),
                    "maxQty": fmt(MAX_QTY),
                    "stepSize": fmt(sym.lot),
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            # Replay-only keys: which kline fields are derived, and whether this is a load-test clone.
            DERIVED_KEY: list(DERIVED_FIELDS),
            CLONE_KEY: sym.clone_of is not None,
            CLONE_OF_KEY: sym.clone_of,
            "replayShiftMs": sym.shift_ms,
        }

    async def klines(self, request: web.Request) -> web.Response:
        q = request.query
        sym = self._symbol(q.get("symbol"))
        interval = q.get("interval")
        if not interval:
            raise missing("interval")
        if interval not in SUPPORTED_INTERVALS:
            msg = (
                "Invalid interval."
                if interval not in BINANCE_INTERVALS
                else "Invalid interval (the replay records 1m candles; 1s is not available)."
            )
            raise ApiError(-1120, msg)
        start, end, limit = (
            _int_param(request, "startTime"),
            _int_param(request, "endTime"),
            _int_param(request, "limit"),
        )
        limit = DEFAULT_KLINES_LIMIT if limit is None else limit
        if not 1 <= limit <= MAX_KLINES_LIMIT:
            raise ApiError(-1130, "Invalid data sent for a parameter.")
        if start is not None and end is not None and start > end:
            raise ApiError(-1023, "Start time is greater than end time.")
        bars = sym.klines(interval, start, end, limit, self.market.clock.now())
        response = web.Response(text=bars.json(), content_type="application/json")
        response.headers[REPLAY_SHIFT_HEADER] = str(sym.shift_ms)
        return response

    async def book_ticker(self, request: web.Request) -> web.Response:
        chosen = self._symbols(request)
        now = self.market.clock.now()
        if chosen is not None and "symbol" in request.query:
            response = web.json_response(chosen[0].book_ticker(now))
            response.headers[REPLAY_SHIFT_HEADER] = str(chosen[0].shift_ms)
            return response
        symbols = chosen if chosen is not None else list(self.market.symbols.values())
        return web.json_response([sym.book_ticker(now) for sym in symbols])
