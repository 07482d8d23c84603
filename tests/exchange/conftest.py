"""Replay servers started in-process on free loopback ports, and clients pointed at them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.ws.reconnecting_websocket import ReconnectingWebsocket

from cryptocast.exchange.binance import BinanceExchange, close_socket
from cryptocast.exchange.clock import WEEK_MS
from cryptocast.exchange.recordings import load_recordings
from cryptocast.exchange.server import ReplayConfig, ReplayServer

FAST = 600.0  # exchange minutes pass in 0.1 s of wall time
WEEKS_AHEAD = 400  # timelines placed explicitly land this many weeks after the recording


def exchange_start_at(symbol: str, offset_ms: int) -> tuple[int, int]:
    """(exchange_start_ms, history_ms) that put "now" exactly ``offset_ms`` after ``symbol``'s first bar."""
    (rec,) = load_recordings(pairs=[symbol])
    return rec.first_open + WEEKS_AHEAD * WEEK_MS + offset_ms, offset_ms


SHIFT_MS = WEEKS_AHEAD * WEEK_MS  # the shift of a timeline placed with exchange_start_at

ReplayFactory = Callable[..., AbstractAsyncContextManager[ReplayServer]]


@pytest.fixture
def replay() -> ReplayFactory:
    """``async with replay(speed=..., pairs=[...]) as server`` — a fresh replay per use."""

    @asynccontextmanager
    async def start(**kwargs: object) -> AsyncIterator[ReplayServer]:
        kwargs.setdefault("speed", FAST)
        async with ReplayServer(ReplayConfig(**kwargs)) as server:  # type: ignore[arg-type]
            yield server

    return start


@asynccontextmanager
async def async_client(server: ReplayServer) -> AsyncIterator[AsyncClient]:
    """The unmodified python-binance AsyncClient, pointed at the replay."""
    client = AsyncClient()
    client.API_URL = server.rest_url
    try:
        yield client
    finally:
        await client.close_connection()


SOCKET_POLL_S = 1  # python-binance waits this long per receive (default 10 s): quick shutdowns


class QuickSocketManager(BinanceSocketManager):
    """python-binance's socket manager whose sockets notice a close request within a second."""

    def _get_socket(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        socket = super()._get_socket(*args, **kwargs)
        socket.TIMEOUT = SOCKET_POLL_S
        return socket


def socket_manager(client: AsyncClient, server: ReplayServer, queue: int = 100) -> BinanceSocketManager:
    manager = QuickSocketManager(client, max_queue_size=queue)
    manager.STREAM_URL = server.stream_url
    return manager


@asynccontextmanager
async def exchange_for(server: ReplayServer, **kwargs: object) -> AsyncIterator[BinanceExchange]:
    async with BinanceExchange(rest_url=server.rest_url, stream_url=server.stream_url, **kwargs) as exchange:
        yield exchange


@asynccontextmanager
async def opened(socket: ReconnectingWebsocket) -> AsyncIterator[ReconnectingWebsocket]:
    """Connect a python-binance socket; close it even if it is mid-reconnect."""
    await socket.connect()
    try:
        yield socket
    finally:
        await close_socket(socket)
