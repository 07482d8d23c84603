"""The API's cached answers in one place: what is kept, for how long, and what ends it.

Every cache of the router lives here (the latest forecast, a request's candles, a page of candles,
a pair's champions, live scores, /health), together with the hot path's entries (``hotpath.py``)
that the first two fill, and the news that ends them: the router LISTENs on the writer's candle
channel and on the predictor's; a notice ends that pair's cached reads at once.

Hot reads (the latest forecast, a page of candles) keep their data for at most REUSE_WALL_S, or
until news of the pair (a candle landed, forecasts stored) ends them; their lag and exchange time
are renewed every REUSE_EXCHANGE_S of exchange time (``encoded.Renewing``). While the news cannot
be heard, the data too are kept no longer than REUSE_EXCHANGE_S, so they stay that fresh on a fast
replay. Stale while revalidate happens at two levels with one window: a cache (``microcache.py``)
gives its previous value to callers that come while one of them refreshes it, and the hot path
sends its previous answer while the route renews it in the background, until the cache's window
(``MicroCache.window``) ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request
from sqlalchemy.engine import URL

from cryptocast.serve import metrics
from cryptocast.serve.encoded import Prepared, Renewing
from cryptocast.serve.hotpath import HotAnswers
from cryptocast.serve.microcache import MicroCache
from cryptocast.sql.notices import listen
from cryptocast.sql.schema import CANDLES_CHANNEL, PREDICTIONS_CHANNEL

REUSE_WALL_S = 0.5
REUSE_EXCHANGE_S = 1.0
CHAMPIONS_TTL_S = 1.0  # a pair's champions change daily at most; every answer names them
PAGE_TTL_S = 5.0  # a page of candles is keyed by the pair's last candle; this bounds a repair's wait
HEALTH_TTL_S = 1.0  # probes and dashboards poll /health; one check a second answers them all
SCORES_TTL_S = 5.0  # live scores change once a minute; dashboards poll them every few seconds


def reuse_s(rate: float) -> float:
    """Wall seconds a hot read may be reused when the exchange clock runs ``rate`` times local time."""
    return min(REUSE_WALL_S, REUSE_EXCHANGE_S / max(rate, 1e-6))


class HotReads:
    """The caches of one router replica, their renewal, and their end on news of a pair.

    ``rate()`` is how fast the exchange clock runs against local time (1.0 until it is known).
    """

    def __init__(self, rate: Callable[[], float]) -> None:
        self.rate = rate
        self.latest: MicroCache[Renewing] = MicroCache(REUSE_WALL_S)  # keyed "<symbol>"
        self.candles: MicroCache[Renewing] = MicroCache(REUSE_WALL_S)  # keyed "<symbol> <request>"
        self.champions: MicroCache[list] = MicroCache(CHAMPIONS_TTL_S)  # keyed "<symbol id>"
        self.pages: MicroCache[Prepared] = MicroCache(PAGE_TTL_S)  # keyed by the range and last candle
        self.health: MicroCache[tuple[int, bytes]] = MicroCache(HEALTH_TTL_S, stale=False)
        self.scores: MicroCache[dict] = MicroCache(SCORES_TTL_S)  # keyed "<symbol id> <window>"
        self.answers: HotAnswers | None = None  # the served app's hot path, once a hot read filled it
        self.hearing = False  # news of the pairs arrives (LISTEN is up): cached reads may last longer
        self.news: asyncio.Task | None = None

    # --- news -------------------------------------------------------------------------------------
    def listen(self, database_url: str | URL) -> None:
        """Hear news of the pairs from now on: a task on the event loop that reconnects by itself."""
        self.news = asyncio.get_event_loop().create_task(self._listen(database_url))

    async def _listen(self, database_url: str | URL) -> None:
        async def connected() -> None:
            self.forget(None)  # whatever changed while nobody listened
            self.hearing = True

        def lost(_reason: str) -> None:
            self.hearing = False

        await listen(
            database_url, {CANDLES_CHANNEL: self.on_news, PREDICTIONS_CHANNEL: self.on_news}, connected, lost
        )

    def on_news(self, note: dict) -> None:
        """A candle landed or forecasts were stored: the pair's cached reads end now."""
        self.forget(note["symbol"])
        metrics.news.labels(note["symbol"]).inc()

    def forget(self, symbol: str | None) -> None:
        """End the cached reads of ``symbol`` (None: of every pair), here and on the hot path."""

        def match(key: str) -> bool:
            return symbol is None or key == symbol or key.startswith(symbol + " ")

        self.latest.drop(match)
        self.candles.drop(match)
        if self.answers is not None:
            self.answers.drop(symbol)

    # --- how long -----------------------------------------------------------------------------------
    def period_s(self) -> float:
        """How long an answer's clock fields stand: one exchange second, at most REUSE_WALL_S."""
        return reuse_s(self.rate())

    def keep_s(self) -> float:
        """How long a hot read's data stand: until news ends them, or one exchange second unheard."""
        return REUSE_WALL_S if self.hearing else self.period_s()

    # --- reads --------------------------------------------------------------------------------------
    async def read(
        self,
        cache: MicroCache[Renewing],
        key: str,
        pair: str,
        make: Callable[[], Awaitable[Renewing]],
        request: Request,
    ) -> Renewing:
        """A cached read, also put where the hot path answers this exact request before FastAPI until
        it ends (hotpath.py); the hot path calls this again in the background to renew it."""
        answer = await cache.get(key, make, self.keep_s())
        fresh, stale = cache.window(key)
        self.answers = request.app.hot  # the app Serve runs (its own copy of the module's): news ends these
        self.answers.put(
            request.scope, answer, fresh, pair, lambda: self.read(cache, key, pair, make, request), stale
        )
        return answer
