"""Every injected fault, observed from the client side (python-binance and BinanceExchange)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest
from binance.exceptions import BinanceAPIException

from cryptocast.exchange.binance import (
    KlineUpdate,
    StreamFailed,
    StreamInterrupted,
    StreamOverflow,
    StreamStalled,
)
from cryptocast.exchange.faults import FaultError, parse_fault_args
from cryptocast.exchange.server import ReplayServer
from cryptocast.records import MINUTE_MS

from .conftest import ReplayFactory, async_client, exchange_for


async def set_faults(server: ReplayServer, method: str = "POST", **faults: object) -> dict:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.port}/replay/faults"
        async with http.request(method, url, json=faults or None) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def test_weight_limit_gives_429_then_418_ban(replay: ReplayFactory) -> None:
    if (left := 60 - time.time() % 60) < 3:
        await asyncio.sleep(left)  # weight windows are wall-clock minutes: stay inside one
    async with replay(pairs=["BTCUSDT"], weight_limit=30) as server, async_client(server) as client:
        await client.get_exchange_info()
        statuses = []
        for _ in range(6):
            with pytest.raises(BinanceAPIException) as err:
                await client.get_exchange_info()
            statuses.append(err.value.status_code)
            assert err.value.code == -1003
            retry_after = int(err.value.response.headers["Retry-After"])
            assert err.value.response.headers["X-MBX-USED-WEIGHT-1M"] == "20"
        assert statuses == [429] * 5 + [418]
        assert 100 <= retry_after <= 120  # the first ban lasts two minutes
        with pytest.raises(BinanceAPIException) as err:
            await client.ping()  # banned: even weight-1 requests
        assert err.value.status_code == 418


async def test_storm_and_ban_faults(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], faults={"storm": 2}) as server, async_client(server) as client:
        with pytest.raises(BinanceAPIException) as err:
            await client.ping()
        assert (err.value.status_code, err.value.code) == (429, -1003)
        assert 1 <= int(err.value.response.headers["Retry-After"]) <= 2
        await set_faults(server, "DELETE")
        assert await client.ping() == {}
        await set_faults(server, ban=1)
        with pytest.raises(BinanceAPIException) as err:
            await client.get_server_time()
        assert err.value.status_code == 418 and err.value.response.headers["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        assert await client.ping() == {}


async def test_server_errors(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], faults={"5xx": 1.0}) as server, async_client(server) as client:
        statuses = set()
        for _ in range(12):
            with pytest.raises(BinanceAPIException) as err:
                await client.get_klines(symbol="BTCUSDT", interval="1m")
            statuses.add(err.value.status_code)
        assert statuses == {500, 502, 503}
        await set_faults(server, **{"5xx": 0})
        assert len(await client.get_klines(symbol="BTCUSDT", interval="1m", limit=3)) == 3


async def test_added_latency(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], faults={"latency": 300}) as server, async_client(server) as client:
        started = time.monotonic()
        await client.ping()
        assert time.monotonic() - started >= 0.3
        async with exchange_for(server) as exchange, exchange.kline_stream(["BTCUSDT"]) as stream:
            await stream.recv()
            update = await stream.recv()
            assert isinstance(update, KlineUpdate)
            lag_ms = server.clock.now() - update.event_time
            assert lag_ms >= 0.25 * server.clock.speed * 1000


async def test_halt_then_trading(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"]) as server, async_client(server) as client:
        async with (
            exchange_for(server) as exchange,
            exchange.kline_stream(["BTCUSDT"], stall_timeout_s=0.6) as stream,
        ):
            await stream.recv()
            await set_faults(server, halt="BTCUSDT:1.5")
            assert (await client.get_symbol_info("BTCUSDT"))["status"] == "HALT"
            assert (await client.get_symbol_info("ETHUSDT"))["status"] == "TRADING"
            with pytest.raises(StreamStalled):
                while True:
                    await stream.recv()
        await asyncio.sleep(1.0)
        assert (await client.get_symbol_info("BTCUSDT"))["status"] == "TRADING"


async def test_dropped_connections_interrupt_then_resume(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], faults={"drop": 0.5}) as server:
        async with exchange_for(server) as exchange, exchange.kline_stream(["BTCUSDT"]) as stream:
            with pytest.raises(StreamInterrupted):
                for _ in range(1000):
                    await stream.recv()
            await set_faults(server, drop=0)
            while True:  # python-binance reconnects within seconds; earlier drops may still be reported
                with contextlib.suppress(StreamInterrupted):
                    update = await asyncio.wait_for(stream.recv(), timeout=8)
                    break
            assert isinstance(update, KlineUpdate)


async def test_stalled_stream_keeps_the_connection_open(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"], faults={"stall": "btcusdt"}) as server:
        async with exchange_for(server) as exchange:
            async with exchange.book_stream(["ETHUSDT"], stall_timeout_s=1.0) as healthy:
                assert (await healthy.recv()).symbol == "ETHUSDT"
            async with exchange.kline_stream(["BTCUSDT"], stall_timeout_s=1.0) as stream:
                with pytest.raises(StreamStalled):
                    await stream.recv()
                assert len(server.hub.connections) == 1
                await set_faults(server, stall="")
                assert isinstance(await stream.recv(), KlineUpdate)


async def test_burst_overflows_the_client_queue(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"]) as server:
        async with exchange_for(server) as exchange, exchange.kline_stream(["BTCUSDT"]) as stream:
            await stream.recv()
            await set_faults(server, burst=500)
            await asyncio.sleep(0.5)  # the client is busy elsewhere while the burst arrives
            with pytest.raises(StreamOverflow):
                for _ in range(1000):
                    await stream.recv()
            with pytest.raises(StreamFailed, match="read loop closed"):
                await stream.recv()


async def test_malformed_messages_break_the_stream(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], faults={"malformed": 1.0}) as server:
        async with exchange_for(server) as exchange, exchange.kline_stream(["BTCUSDT"]) as stream:
            with pytest.raises(StreamFailed, match="JSONDecodeError"):
                await stream.recv()


async def test_future_sends_one_closed_candle_dated_ahead(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], speed=60.0) as server:
        async with exchange_for(server) as exchange, exchange.kline_stream(["BTCUSDT"]) as stream:
            await stream.recv()
            await set_faults(server, future="BTCUSDT:30")
            for _ in range(200):
                update = await stream.recv()
                if update.closed and update.candle.open_time > server.clock.now():
                    break
            else:
                pytest.fail("no future-dated candle arrived")
            ahead = update.candle.open_time - update.event_time // MINUTE_MS * MINUTE_MS
            assert ahead == 30 * MINUTE_MS and update.candle.close_time == update.candle.open_time + 59_999
            assert (await set_faults(server, "GET"))["future"] == {}, "sent once, then off"


async def test_admin_endpoint_validates_and_reports(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], clones={"BTCUSDT": 2}) as server:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}"
            async with http.post(f"{base}/replay/faults", json={"explode": 1}) as response:
                assert response.status == 400 and "unknown faults" in (await response.json())["error"]
            async with http.post(f"{base}/replay/faults", json={"halt": "NOPE:3"}) as response:
                assert response.status == 400
            for bad in ("NOPE:3", "BTCUSDT:0", "BTCUSDT:soon", "BTCUSDT"):
                async with http.post(f"{base}/replay/faults", json={"future": bad}) as response:
                    assert response.status == 400, bad
                    assert "fault future" in (await response.json())["error"]
            state = await set_faults(server, latency=5, stall=["btcusdt@kline_1m"], halt="BTCUSDT_C01:60")
            assert (
                state["latency"] == 5
                and state["stall"] == ["btcusdt@kline_1m"]
                and "BTCUSDT_C01" in state["halt"]
            )
            async with http.get(f"{base}/replay/info") as response:
                info = await response.json()
    assert info["symbols"]["BTCUSDT_C01"]["status"] == "HALT" and info["faults"]["latency"] == 5
    assert info["exchangeNowMs"] == pytest.approx(
        info["exchangeStartMs"] + (info["wallNowMs"] - info["wallStartMs"]) * info["speed"], abs=1
    )


def test_fault_flags_parse() -> None:
    assert parse_fault_args(["drop=30", "5xx=0.1", "halt=BTCUSDT:10"]) == {
        "drop": "30",
        "5xx": "0.1",
        "halt": "BTCUSDT:10",
    }
    with pytest.raises(FaultError):
        parse_fault_args(["drop"])
