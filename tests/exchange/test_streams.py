"""Websocket streams over python-binance's BinanceSocketManager: klines, books, combined, control."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import aiohttp
import pytest

from cryptocast.exchange.recordings import load_recordings
from cryptocast.exchange.streams import CLOSE_SLACK_S, PUMP_INTERVAL_S
from cryptocast.records import MINUTE_MS, Candle, Provenance

from .conftest import ReplayFactory, async_client, exchange_start_at, opened, socket_manager

ALL_PAIRS = ["BTCUSDT", "ETHUSDT", "ETHBTC", "BNBBTC", "LTCBTC", "XRPBTC", "ADABTC"]


async def recv_for(socket, seconds: float) -> list[dict]:
    """Every message python-binance hands over within ``seconds`` of wall time."""
    messages, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            messages.append(await asyncio.wait_for(socket.recv(), timeout=left))
        except TimeoutError:
            break
    return messages


async def test_closed_socket_candle_equals_rest_candle_field_for_field(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHBTC"]) as server, async_client(server) as client:
        manager = socket_manager(client, server)
        finals, updates = [], defaultdict(list)
        async with opened(manager.kline_socket("ETHBTC")) as socket:
            while len(finals) < 4:
                msg = await asyncio.wait_for(socket.recv(), timeout=5)
                assert msg["e"] == "kline" and msg["s"] == "ETHBTC" and msg["k"]["i"] == "1m"
                (finals if msg["k"]["x"] else updates[msg["k"]["t"]]).append(msg)
        # The first minute may close right after the socket opened, before any of its updates.
        for msg in finals[1:]:
            k = msg["k"]
            ws = Candle.from_ws_kline(k, Provenance.REST)
            (row,) = await client.get_klines(symbol="ETHBTC", interval="1m", startTime=k["t"], limit=1)
            assert ws == Candle.from_rest_row(row)
            assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["V"], k["Q"]] == [
                row[i] for i in (1, 2, 3, 4, 5, 7, 9, 10)
            ]
            assert msg["E"] == k["T"] + 1 and k["L"] - k["f"] + 1 == k["n"]
            partials = [Candle.from_ws_kline(u["k"], Provenance.REST) for u in updates[k["t"]]]
            assert partials, "forming updates precede the close"
            assert all(p.open == ws.open and ws.low <= p.low <= p.high <= ws.high for p in partials)
            volumes = [p.volume for p in partials]
            assert volumes == sorted(volumes) and volumes[-1] <= ws.volume
            assert all(p != ws for p in partials) or ws.volume == 0


@pytest.mark.parametrize(("speed", "seconds"), [(60, 5.5), (1200, 3.0)])
async def test_one_closed_candle_per_pair_per_minute_in_order(
    replay: ReplayFactory, speed: float, seconds: float
) -> None:
    async with replay(speed=speed) as server, async_client(server) as client:
        manager = socket_manager(client, server)
        streams = [f"{p.lower()}@kline_1m" for p in ALL_PAIRS]
        closed: dict[str, list[int]] = defaultdict(list)
        async with opened(manager.multiplex_socket(streams)) as socket:
            start = server.clock.now()
            for msg in await recv_for(socket, seconds):
                assert msg.get("e") != "error", msg
                data = msg["data"]
                assert msg["stream"] == data["s"].lower() + "@kline_1m"
                if data["k"]["x"]:
                    closed[data["s"]].append(data["k"]["t"])
            end = server.clock.now()
    expected = (end - start) / MINUTE_MS
    for pair in ALL_PAIRS:
        times = closed[pair]
        assert abs(len(times) - expected) <= 1.5, (pair, len(times), expected)
        sym = server.market.symbols[pair]
        first = int(sym.times.searchsorted(times[0]))
        assert times == sym.times[first : first + len(times)].tolist(), pair  # in order, none missing


@pytest.mark.parametrize("speed", [60, 600])
async def test_high_speed_thins_updates_but_keeps_some_in_every_minute(
    replay: ReplayFactory, speed: float
) -> None:
    """At 60x, at most 4 messages a wall second a stream (unthinned it would be 60 books a second);
    at 600x, where a minute lasts 0.1 s, still forming updates before the closes."""
    async with replay(pairs=["BTCUSDT"], speed=speed) as server, async_client(server) as client:
        manager = socket_manager(client, server)
        async with opened(manager.multiplex_socket(["btcusdt@kline_1m", "btcusdt@bookTicker"])) as socket:
            messages = await recv_for(socket, 3.0)
    books = [m for m in messages if m["stream"].endswith("@bookTicker")]
    klines = [m["data"]["k"] for m in messages if m["stream"].endswith("@kline_1m")]
    closes = [k["t"] for k in klines if k["x"]]
    forming = defaultdict(int)
    for k in klines:
        forming[k["t"]] += not k["x"]
    assert books and closes
    if speed == 60:
        assert len(books) <= 3.0 * 4 + 1 and sum(forming.values()) <= 3.0 * 4 + 1
    else:  # how many fit in a 0.1 s minute depends on how busy the machine is: most minutes get some
        with_updates = sum(forming[t] >= 1 for t in closes[1:])
        assert len(closes) >= 10 and with_updates >= len(closes[1:]) // 2, (closes, dict(forming))


async def test_book_ticker_socket(replay: ReplayFactory) -> None:
    async with replay(pairs=["ETHUSDT"]) as server, async_client(server) as client:
        async with opened(socket_manager(client, server).symbol_book_ticker_socket("ETHUSDT")) as socket:
            quotes = list(await recv_for(socket, 1.0))
    assert len(quotes) >= 5
    assert [q["u"] for q in quotes] == sorted({q["u"] for q in quotes})
    for q in quotes:
        assert set(q) == {"u", "s", "b", "B", "a", "A"} and q["s"] == "ETHUSDT"
        assert isinstance(q["b"], str) and float(q["b"]) < float(q["a"]) and float(q["B"]) > 0


async def test_combined_stream_wraps_messages(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"]) as server, async_client(server) as client:
        names = ["btcusdt@kline_1m", "ethusdt@bookTicker"]
        async with opened(socket_manager(client, server).multiplex_socket(names)) as socket:
            messages = await recv_for(socket, 1.0)
    assert {m["stream"] for m in messages} == set(names)
    assert all(set(m) == {"stream", "data"} for m in messages)
    assert all(("k" in m["data"]) == (m["stream"] == names[0]) for m in messages)


async def test_live_subscribe_unsubscribe_and_list(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"]) as server, async_client(server) as client:
        async with opened(socket_manager(client, server).multiplex_socket(["btcusdt@kline_1m"])) as socket:
            await socket.ws.send(
                json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 1})
            )
            messages = await recv_for(socket, 0.8)
            assert {"result": None, "id": 1} in messages
            assert any(m.get("stream") == "ethusdt@bookTicker" for m in messages)
            await socket.ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            await socket.ws.send(
                json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 3})
            )
            await socket.ws.send(json.dumps({"method": "JUMP", "id": 4}))
            messages = await recv_for(socket, 0.8)
            assert {"result": ["btcusdt@kline_1m", "ethusdt@bookTicker"], "id": 2} in messages
            acked = messages.index({"result": None, "id": 3})
            assert not any(m.get("stream") == "ethusdt@bookTicker" for m in messages[acked:])
            assert any(m.get("stream") == "btcusdt@kline_1m" for m in messages[acked:])
            error = next(m for m in messages if m.get("id") == 4)
            assert error["error"]["code"] == 2


async def test_more_than_five_incoming_messages_per_second_disconnects(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"]) as server, async_client(server) as client:
        async with opened(socket_manager(client, server).multiplex_socket(["btcusdt@kline_1m"])) as socket:
            for i in range(7):
                await socket.ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            messages = await recv_for(socket, 1.0)
    errors = [m for m in messages if m.get("e") == "error"]
    assert errors and errors[0]["type"] in {
        "ConnectionClosedError",
        "ConnectionClosedOK",
        "BinanceWebsocketClosed",
    }
    assert "1008" in errors[0]["m"] or "Too many" in errors[0]["m"]


async def test_connection_lifetime_is_24h_of_exchange_time(replay: ReplayFactory) -> None:
    async with (
        replay(pairs=["BTCUSDT"], speed=21_600) as server,
        async_client(server) as client,
    ):  # 24 h = 4 s; ~10,000 messages/s, so a queue that a loaded machine cannot overflow
        async with opened(socket_manager(client, server, queue=100_000).kline_socket("BTCUSDT")) as socket:
            started = time.monotonic()
            while (msg := await asyncio.wait_for(socket.recv(), timeout=4)).get("e") != "error":
                assert msg["e"] == "kline"
            lived = time.monotonic() - started
    assert msg["type"] == "BinanceWebsocketClosed" and 3.6 <= lived <= 8.0


async def test_end_of_recording_closes_streams_and_breaks_the_symbol(replay: ReplayFactory) -> None:
    (rec,) = load_recordings(pairs=["ETHUSDT"])
    length = rec.end - rec.first_open
    start_ms, history = exchange_start_at("ETHUSDT", length - 2 * MINUTE_MS)
    async with replay(pairs=["ETHUSDT"], speed=120, exchange_start_ms=start_ms, history_ms=history) as server:
        async with async_client(server) as client:
            info = await client.get_symbol_info("ETHUSDT")
            assert info is not None and info["status"] == "TRADING"
            async with opened(socket_manager(client, server).kline_socket("ETHUSDT")) as socket:
                messages = await recv_for(socket, 2.5)
            info = await client.get_symbol_info("ETHUSDT")
            assert info is not None and info["status"] == "BREAK"
            rows = await client.get_klines(symbol="ETHUSDT", interval="1m", limit=2)
    finals = [m["k"]["t"] for m in messages if m.get("e") == "kline" and m["k"]["x"]]
    last = server.market.symbols["ETHUSDT"].times[-1]
    assert finals[-1] == last and [r[0] for r in rows] == [last - MINUTE_MS, last]
    after = messages[messages.index(next(m for m in messages if m.get("e") == "error")) :]
    assert after[0]["type"] == "BinanceWebsocketClosed" and not any(m.get("e") == "kline" for m in after)


async def test_bare_ws_connection_subscribes_later(replay: ReplayFactory) -> None:
    async with replay(pairs=["ETHUSDT"]) as server, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{server.stream_url}ws") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 7})
            assert await ws.receive_json(timeout=2) == {"result": None, "id": 7}
            quote = await ws.receive_json(timeout=2)
            assert quote["s"] == "ETHUSDT" and "stream" not in quote  # raw payloads on /ws


async def test_the_pump_wakes_at_a_minutes_close_not_at_its_next_interval(replay: ReplayFactory) -> None:
    """Closed candles leave at their close, as the exchange sends them, not up to a pump interval later."""
    async with replay(speed=60.0, pairs=["BTCUSDT"]) as server:
        clock = server.market.clock
        close_wall = int(clock.wall_at((clock.now() // MINUTE_MS + 2) * MINUTE_MS))
        clock.wall = lambda: close_wall - 4  # 4 ms before a close
        assert server.hub._pause_s() == pytest.approx(0.004 + CLOSE_SLACK_S, abs=0.001)
        clock.wall = lambda: close_wall - 500  # no close within the interval
        assert server.hub._pause_s() == PUMP_INTERVAL_S
