"""The replay exchange server: REST, websocket streams and the loopback admin routes in one app.

Start it in-process (tests, benchmarks)::

    async with ReplayServer(ReplayConfig(speed=600)) as server:
        client.API_URL = server.rest_url          # http://127.0.0.1:<port>/api
        manager.STREAM_URL = server.stream_url    # ws://127.0.0.1:<port>/

or standalone with ``cryptocast exchange replay``. Admin routes (loopback only, no weight):
``GET /replay/info`` (timeline, shifts, clock mapping, symbols) and ``GET/POST/DELETE /replay/faults``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiohttp import web

from cryptocast.exchange.clock import DEFAULT_HISTORY_MS, WEEK_MS, open_timeline, wall_ms
from cryptocast.exchange.faults import FaultError, Faults
from cryptocast.exchange.market import DERIVED_FIELDS, Market
from cryptocast.exchange.protocol import REPLAY_INFO_PATH
from cryptocast.exchange.ratelimit import DEFAULT_WEIGHT_LIMIT, FIRST_BAN_S, WeightLimiter
from cryptocast.exchange.recordings import RecordingError, load_recordings
from cryptocast.exchange.rest import RestApi
from cryptocast.exchange.streams import StreamHub
from cryptocast.settings import LOOPBACK

LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1"})


@dataclass
class ReplayConfig:
    """Everything a replay needs; ``port=0`` picks a free port, ``state_dir=None`` keeps no epoch."""

    port: int = 0
    speed: float = 1.0
    pairs: list[str] | None = None  # None: every recording in ``data``
    data: Path | None = None  # None: the bundled recordings
    state_dir: Path | None = None  # where epoch.json lives (data_dir/replay)
    history_ms: int = DEFAULT_HISTORY_MS
    reset: bool = False
    exchange_start_ms: int | None = None  # None: the exchange clock starts at wall time
    clones: dict[str, int] = field(default_factory=dict)
    faults: dict[str, object] = field(default_factory=dict)
    weight_limit: int = DEFAULT_WEIGHT_LIMIT
    first_ban_s: int = FIRST_BAN_S


class ReplayServer:
    def __init__(self, config: ReplayConfig) -> None:
        if config.speed <= 0:
            raise ValueError("speed must be positive")
        self.config = config
        recordings = load_recordings(config.data, config.pairs)
        unknown = set(config.clones) - {r.symbol for r in recordings}
        if unknown:
            raise RecordingError(f"--clone: no recording for {sorted(unknown)}")
        self.timeline, periods = open_timeline(
            [r.first_open for r in recordings],
            speed=config.speed,
            history_ms=config.history_ms,
            state_dir=config.state_dir,
            reset=config.reset,
            exchange_start_ms=config.exchange_start_ms,
        )
        self.clock = self.timeline.clock()
        self.market = Market(recordings, self.timeline, periods, self.clock, clones=config.clones)
        self.limiter = WeightLimiter(limit=config.weight_limit, first_ban_s=config.first_ban_s)
        self.faults = Faults(self.limiter)
        self.faults.apply(config.faults, set(self.market.symbols))
        self.rest = RestApi(self.market, self.limiter, self.faults)
        self.hub = StreamHub(self.market, self.faults)
        self.port = config.port
        self._runner: web.AppRunner | None = None

    # --- urls -----------------------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        """REST base in python-binance's ``API_URL`` form."""
        return f"http://{LOOPBACK}:{self.port}/api"

    @property
    def stream_url(self) -> str:
        """Websocket base in python-binance's ``STREAM_URL`` form."""
        return f"ws://{LOOPBACK}:{self.port}/"

    # --- lifecycle ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.rest.middleware])
        app.add_routes(self.rest.routes())
        app.add_routes(
            [
                web.get("/ws", self.hub.handle_raw),
                web.get("/ws/{streams:.*}", self.hub.handle_raw),
                web.get("/stream", self.hub.handle_combined),
                web.get(REPLAY_INFO_PATH, self.info),
                web.get("/replay/faults", self.get_faults),
                web.post("/replay/faults", self.post_faults),
                web.delete("/replay/faults", self.delete_faults),
            ]
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, self.config.port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server) and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- admin ----------------------------------------------------------------------------------
    @staticmethod
    def _loopback_only(request: web.Request) -> None:
        if request.remote not in LOOPBACK_ADDRESSES:
            raise web.HTTPForbidden(text="admin routes answer loopback clients only")

    def describe(self) -> dict:
        """The replay's timeline and symbols; the mapping lets clients convert exchange ↔ wall time."""
        now_wall = wall_ms()
        now = self.clock.exchange_at(now_wall)
        shifts = sorted({(sym.recording.first_open, sym.shift_ms) for sym in self.market.symbols.values()})
        return {
            "exchange": "replay",
            "exchangeNowMs": now,
            "wallNowMs": now_wall,
            "speed": self.clock.speed,
            "wallStartMs": self.clock.wall_start_ms,
            "exchangeStartMs": self.clock.exchange_start_ms,
            "historyMs": self.timeline.history_ms,
            "mapping": "exchange = exchangeStartMs + (wall - wallStartMs) * speed",
            "shifts": [{"shiftMs": shift, "shiftWeeks": shift // WEEK_MS} for _, shift in shifts],
            "weightLimit": self.limiter.limit,
            "symbols": {
                name: {
                    "recording": sym.recording.source,
                    "recordedFirstOpenMs": sym.recording.first_open,
                    "recordedEndMs": sym.recording.end,
                    "shiftMs": sym.shift_ms,
                    "startMs": sym.start,
                    "endMs": sym.end,
                    "status": self.rest.status(sym, now),
                    "clone": sym.clone_of is not None,
                    "cloneOf": sym.clone_of,
                    "derivedFields": list(DERIVED_FIELDS),
                }
                for name, sym in self.market.symbols.items()
            },
            "faults": self.faults.describe(),
            "connections": len(self.hub.connections),
        }

    async def info(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        return web.json_response(self.describe())

    async def get_faults(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        return web.json_response(self.faults.describe())

    async def post_faults(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise FaultError("expected a JSON object of faults")
            self.faults.apply(spec, set(self.market.symbols))
        except (FaultError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.faults.describe())

    async def delete_faults(self, request: web.Request) -> web.Response:
        self._loopback_only(request)
        self.faults.clear()
        return web.json_response(self.faults.describe())
