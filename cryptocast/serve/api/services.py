"""What every route shares in one router replica: the database, the exchange and its clock, the
pairs' deployments, the live predictor, and the cached reads (``HotReads``).

The deployment (``serve/router.py``) makes one ``ApiServices`` in its ``__init__``; routes receive
it through the ``Services`` dependency (``deps.py``). What a pair's answer needs from the database
and the exchange beyond its own rows (the pair itself, ``freshness``, a call to its model
deployment) is here, so each resource asks for it the same way.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import ray
from binance.exceptions import BinanceAPIException, BinanceRequestException
from ray import serve
from ray.serve.handle import DeploymentHandle

from cryptocast.exchange.binance import BinanceExchange
from cryptocast.exchange.exchangeclock import ExchangeClock, server_time
from cryptocast.serve import reads
from cryptocast.serve.api import views
from cryptocast.serve.config import PAIR_DEPLOYMENT, ServeOptions, pair_app_name
from cryptocast.serve.encoded import Prepared, Renewing
from cryptocast.serve.errors import ApiError
from cryptocast.serve.hotreads import HotReads
from cryptocast.serve.replicadb import replica_database

ROUTER_POOL = 10
CALL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


class ApiServices:
    def __init__(self, options: ServeOptions, live: DeploymentHandle) -> None:
        self.options = options
        self.db = replica_database(options.database_url_file, ROUTER_POOL)
        self.live = live
        self._exchange: BinanceExchange | None = None
        self.clock: ExchangeClock | None = None
        self.hot = HotReads(lambda: self.clock.rate if self.clock is not None else 1.0)
        self.hot.listen(self.db.url)

    # --- a pair -------------------------------------------------------------------------------------
    async def pair(self, text: str) -> dict:
        """The pair's row, or 404 saying how to add it (422 for a malformed symbol)."""
        symbol = views.symbol(text)
        row = await reads.fetchrow(self.db, reads.PAIR_SQL, symbol)
        if row is None:
            raise ApiError(404, f"{symbol} is not tracked (add it with POST /pairs)")
        return row

    async def call(self, symbol: str, method: str, *args: Any) -> dict:
        """``method`` of the pair's model deployment, or 503 when it cannot be reached in time."""
        try:
            handle = serve.get_deployment_handle(PAIR_DEPLOYMENT, app_name=pair_app_name(symbol))
            return await asyncio.wait_for(getattr(handle, method).remote(*args), CALL_TIMEOUT_S)
        except (KeyError, ValueError, ray.exceptions.RayError, TimeoutError) as exc:
            raise ApiError(
                503, f"{symbol}: its model deployment is not reachable ({type(exc).__name__})"
            ) from None

    # --- freshness ----------------------------------------------------------------------------------
    async def freshness(self, row: dict) -> dict:
        fresh = await self.data_freshness(row)
        return fresh | views.clock_fields(fresh, await self.exchange_now_ms())

    async def data_freshness(self, row: dict) -> dict:
        """The part of ``freshness`` that changes with the data: the models and the last candle."""
        champions = await self.hot.champions.get(
            str(row["id"]), lambda: reads.fetch(self.db, reads.CHAMPIONS_SQL, row["id"])
        )
        models = [
            {
                "kind": c["kind"],
                "version": c["version"],
                "trained_at": views.iso(c["trained_at"]),
                "served_horizons": json.loads(c["served_horizons"]) if c["served_horizons"] else None,
            }
            for c in champions
        ]
        return {"models": models, "last_candle_time": views.iso(row["last_candle_time"])}

    async def renewing(self, row: dict, prepared: Prepared) -> Renewing:
        """A cached read whose lag and exchange time are renewed each exchange second (encoded.py)."""
        await self.exchange_now_ms()  # asks the exchange when its last answer is old
        clock = self.clock

        def stamp(fresh: dict) -> dict:
            return views.clock_fields(fresh, clock.estimate_ms() if clock is not None else None)

        return Renewing(prepared, await self.data_freshness(row), stamp, self.hot.period_s)

    # --- the exchange -------------------------------------------------------------------------------
    async def exchange(self) -> BinanceExchange:
        if self._exchange is None:
            self._exchange = BinanceExchange(
                rest_url=self.options.rest_url, stream_url=self.options.stream_url
            )
        return self._exchange

    async def exchange_now_ms(self) -> float | None:
        """The exchange's clock (lag is on its time axis); None while the exchange cannot be asked."""
        if self.clock is None:
            self.clock = ExchangeClock(server_time(await self.exchange()))
        try:
            return await asyncio.wait_for(self.clock.refreshed_ms(), PROBE_TIMEOUT_S)
        except (
            OSError,
            TimeoutError,
            aiohttp.ClientError,
            BinanceAPIException,
            BinanceRequestException,
            KeyError,
        ):
            return None
