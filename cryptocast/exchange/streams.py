"""Websocket market streams: ``/ws/<stream>``, ``/stream?streams=a/b`` and live (un)subscription.

One pump task advances every subscribed stream on the exchange clock and fans each message out to
the subscribed connections. Each connection has its own outbox and sender, so a slow client delays
only itself (and is cut off once its outbox overflows, as Binance drops slow consumers).
Supported streams: ``<symbol>@kline_1m`` and ``<symbol>@bookTicker``, whose messages
:mod:`cryptocast.exchange.feeds` makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from cryptocast.exchange.faults import Faults
from cryptocast.exchange.feeds import BookStream, KlineStream
from cryptocast.exchange.market import Market
from cryptocast.records import MINUTE_MS

PUMP_INTERVAL_S = 0.01
CLOSE_SLACK_S = 0.001  # past a minute's close when the pump wakes for it (the clock reads whole ms)
# At high speed, updates are thinned to at most 4 a second a stream (the speed-up would otherwise
# multiply the message rate consumers face far past the real exchange's), but never below 4
# forming updates a minute, however fast the replay runs.
MIN_UPDATE_WALL_S = 0.25
MIN_UPDATES_PER_MINUTE = 4
PING_INTERVAL_S = 20.0
CONNECTION_LIFETIME_MS = 24 * 3_600_000  # exchange time; scaled with speed
MAX_INCOMING_PER_S = 5
MAX_STREAMS_PER_CONNECTION = 1024
CLOSE_DRAIN_S = 2.0  # longest wait for queued messages before a server-side close
MAX_OUTBOX = 20_000  # queued messages before a slow consumer is cut off
STREAM_RE = re.compile(r"^(?P<symbol>[a-z0-9_.-]{1,20})@(?P<kind>kline_1m|bookTicker)$")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS")


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    opened_wall: float
    streams: set[str] = field(default_factory=set)
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    incoming: deque = field(default_factory=deque)
    last_text: str | None = None
    closing: bool = False

    def send(self, text: str) -> None:
        self.last_text = text
        self.outbox.put_nowait((time.monotonic(), text))

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (a network failure)."""
        if self.request.transport is not None:
            self.request.transport.abort()


class StreamHub:
    def __init__(self, market: Market, faults: Faults) -> None:
        self.market = market
        self.faults = faults
        self.connections: set[Connection] = set()
        self.streams: dict[str, KlineStream | BookStream] = {}
        self.sent = 0
        self._ended: set[str] = set()
        self._next_drop = 0.0
        self._pump: asyncio.Task | None = None
        self._closers: set[asyncio.Task] = set()

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        now = self.market.clock.now()
        self._ended = {s for s, sym in self.market.symbols.items() if now >= sym.end}
        self._pump = asyncio.create_task(self._run(), name="replay-stream-pump")

    async def stop(self) -> None:
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for conn in list(self.connections):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # --- subscription ---------------------------------------------------------------------------
    def _subscribe(self, conn: Connection, names: list[str]) -> str | None:
        bad = [n for n in names if not isinstance(n, str) or not STREAM_RE.match(n)]
        if bad:
            return f"Invalid request: unsupported stream name(s) {bad}"
        if len(conn.streams | set(names)) > MAX_STREAMS_PER_CONNECTION:
            return f"Invalid request: more than {MAX_STREAMS_PER_CONNECTION} streams"
        now = self.market.clock.now()
        for name in names:
            conn.streams.add(name)
            if name not in self.streams:
                m = STREAM_RE.match(name)
                assert m is not None
                sym = self.market.get(m["symbol"].upper())
                if sym is not None:  # unknown symbols are accepted and stay silent, as on Binance
                    kind = KlineStream if m["kind"] == "kline_1m" else BookStream
                    self.streams[name] = kind(sym, now)
        return None

    def _unsubscribe(self, conn: Connection, names: list[str]) -> None:
        conn.streams.difference_update(names)
        self._forget_unused()

    def _forget_unused(self) -> None:
        used = set().union(*(c.streams for c in self.connections)) if self.connections else set()
        for name in list(self.streams):
            if name not in used:
                del self.streams[name]

    # --- handlers -------------------------------------------------------------------------------
    async def handle_raw(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("streams", "")
        names = [n for n in path.split("/") if n]
        return await self._serve(request, names, combined=False)

    async def handle_combined(self, request: web.Request) -> web.StreamResponse:
        names = [n for n in request.query.get("streams", "").split("/") if n]
        return await self._serve(request, names, combined=True)

    async def _serve(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        bad = [n for n in names if not STREAM_RE.match(n)]
        if bad:
            return web.json_response({"code": -1100, "msg": f"Invalid stream name(s) {bad}"}, status=400)
        ws = web.WebSocketResponse(heartbeat=PING_INTERVAL_S, autoping=True)
        await ws.prepare(request)
        conn = Connection(ws, request, combined, time.monotonic())
        self._subscribe(conn, names)
        self.connections.add(conn)
        sender = asyncio.create_task(self._sender(conn))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if not self._within_rate(conn):
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Too many requests")
                    break
                self._control(conn, msg.data)
        finally:
            self.connections.discard(conn)
            sender.cancel()
            self._forget_unused()
        return ws

    def _within_rate(self, conn: Connection) -> bool:
        now = time.monotonic()
        conn.incoming.append(now)
        while conn.incoming and conn.incoming[0] <= now - 1.0:
            conn.incoming.popleft()
        return len(conn.incoming) <= MAX_INCOMING_PER_S

    def _control(self, conn: Connection, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError as exc:
            conn.send(json.dumps({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}}))
            return
        if not isinstance(req, dict):
            conn.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: expected an object"}}))
            return
        rid, method, params = req.get("id"), req.get("method"), req.get("params", [])
        if method not in METHODS:
            msg = f"Invalid request: unknown variant {method!r}, expected one of {', '.join(METHODS)}"
            conn.send(json.dumps({"error": {"code": 2, "msg": msg}, "id": rid}))
            return
        if method == "LIST_SUBSCRIPTIONS":
            conn.send(json.dumps({"result": sorted(conn.streams), "id": rid}))
            return
        if not isinstance(params, list):
            conn.send(
                json.dumps({"error": {"code": 2, "msg": "Invalid request: params must be a list"}, "id": rid})
            )
            return
        error = None
        if method == "SUBSCRIBE":
            error = self._subscribe(conn, params)
        else:
            self._unsubscribe(conn, params)
        if error:
            conn.send(json.dumps({"error": {"code": 2, "msg": error}, "id": rid}))
        else:
            conn.send(json.dumps({"result": None, "id": rid}))

    async def _sender(self, conn: Connection) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.CancelledError):
            while True:
                queued_at, text = await conn.outbox.get()
                latency_s = self.faults.latency_ms / 1000.0
                if latency_s > 0:
                    delay = queued_at + latency_s - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if self.faults.chance(self.faults.malformed_rate):
                    text = text[: len(text) // 2]
                await conn.ws.send_str(text)
                self.sent += 1

    # --- the pump -------------------------------------------------------------------------------
    async def _run(self) -> None:
        lifetime_s = self.market.clock.wall_seconds(CONNECTION_LIFETIME_MS)
        while True:
            await asyncio.sleep(self._pause_s())
            wall_s = time.monotonic()
            self._inject(wall_s)
            self._tick(self.market.clock.now(), wall_s)
            for conn in list(self.connections):
                if wall_s - conn.opened_wall >= lifetime_s:
                    self._close_soon(conn, "connection lifetime (24 h) reached")
                elif conn.outbox.qsize() > MAX_OUTBOX:
                    conn.abort()
            self._end_recordings()

    def _pause_s(self) -> float:
        """Until the pump's next turn: ``PUMP_INTERVAL_S``, or sooner when a minute closes before
        then, so that closed candles leave at their close, as the exchange sends them."""
        clock = self.market.clock
        next_close = (clock.now() // MINUTE_MS + 1) * MINUTE_MS
        to_close_s = (clock.wall_at(next_close) - clock.wall()) / 1000
        return min(PUMP_INTERVAL_S, max(to_close_s, 0.0) + CLOSE_SLACK_S)

    def _inject(self, wall_s: float) -> None:
        if self.faults.drop_every_s > 0:
            if self._next_drop == 0.0:
                self._next_drop = wall_s + self.faults.drop_every_s
            elif wall_s >= self._next_drop:
                self._next_drop = wall_s + self.faults.drop_every_s
                for conn in list(self.connections):
                    conn.abort()
        else:
            self._next_drop = 0.0
        if self.faults.burst_pending:
            count, self.faults.burst_pending = self.faults.burst_pending, 0
            for conn in self.connections:
                if conn.last_text is not None:
                    for _ in range(count):
                        conn.send(conn.last_text)
        for symbol, minutes in list(self.faults.future_pending.items()):
            name = f"{symbol.lower()}@kline_1m"
            stream = self.streams.get(name)
            if not isinstance(stream, KlineStream):
                continue  # sent once someone subscribes
            event = stream.future_event(self.market.clock.now(), minutes)
            if event is not None:
                del self.faults.future_pending[symbol]
                self._publish(name, [event])

    def _tick(self, now: int, wall_s: float) -> None:
        minute_wall_s = MINUTE_MS / 1000 / self.market.clock.speed
        min_gap_s = min(MIN_UPDATE_WALL_S, minute_wall_s / MIN_UPDATES_PER_MINUTE)
        for name, stream in list(self.streams.items()):
            payloads = stream.advance(now, wall_s, min_gap_s)
            if not payloads or self.faults.is_stalled(name) or self.faults.is_halted(stream.sym.symbol):
                continue
            self._publish(name, payloads)

    def _publish(self, name: str, payloads: list[dict]) -> None:
        """Send each payload to the connections subscribed to stream ``name``."""
        subscribers = [c for c in self.connections if name in c.streams]
        for payload in payloads:
            raw = wrapped = None
            for conn in subscribers:
                if conn.combined:
                    wrapped = wrapped or json.dumps({"stream": name, "data": payload}, separators=(",", ":"))
                    conn.send(wrapped)
                else:
                    raw = raw or json.dumps(payload, separators=(",", ":"))
                    conn.send(raw)

    def _end_recordings(self) -> None:
        """At the end of a recording its streams close (the symbol is in BREAK from then on)."""
        now = self.market.clock.now()
        for symbol, sym in self.market.symbols.items():
            if symbol in self._ended or now < sym.end:
                continue
            self._ended.add(symbol)
            prefix = symbol.lower() + "@"
            for conn in list(self.connections):
                ending = {s for s in conn.streams if s.startswith(prefix)}
                if ending:
                    conn.streams -= ending
                    if not conn.streams:
                        self._close_soon(conn, f"{symbol} recording ended (BREAK)")
            self._forget_unused()

    def _close_soon(self, conn: Connection, reason: str) -> None:
        if not conn.closing:
            conn.closing = True
            conn.streams.clear()
            task = asyncio.create_task(self._close(conn, reason))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)

    async def _close(self, conn: Connection, reason: str) -> None:
        """Close after the queued messages went out (the final candles must reach the client)."""
        deadline = time.monotonic() + CLOSE_DRAIN_S
        while not conn.outbox.empty() and time.monotonic() < deadline and not conn.ws.closed:
            await asyncio.sleep(PUMP_INTERVAL_S)
        self.connections.discard(conn)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode()[:120])
