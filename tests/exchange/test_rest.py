"""REST over the unmodified python-binance clients (async and sync): data, errors, weights."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from binance import Client
from binance.exceptions import BinanceAPIException

from cryptocast.exchange.market import DERIVED_FIELDS
from cryptocast.exchange.recordings import load_recordings
from cryptocast.exchange.server import ReplayServer
from cryptocast.records import MINUTE_MS, Candle

from .conftest import SHIFT_MS, ReplayFactory, async_client, exchange_start_at
from .test_recordings import HOLES_2019, holes

AFTER_THE_END_MS = 40 * 24 * 3_600_000  # "now" after every minute of a 2019 recording has closed


async def test_ping_time_and_exchange_info(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"]) as server, async_client(server) as client:
        assert await client.ping() == {}
        server_time = (await client.get_server_time())["serverTime"]
        assert abs(server_time - server.clock.now()) < 60_000
        info = await client.get_exchange_info()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
        weight = next(r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT")
        assert weight == {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": 6000,
        }
        btc = await client.get_symbol_info("BTCUSDT")
        assert btc is not None
        assert (btc["status"], btc["baseAsset"], btc["quoteAsset"], btc["baseAssetPrecision"]) == (
            "TRADING",
            "BTC",
            "USDT",
            8,
        )
        filters = {f["filterType"]: f for f in btc["filters"]}
        assert (
            filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
            and filters["LOT_SIZE"]["stepSize"] == "0.00001000"
        )
        assert btc["derivedFields"] == list(DERIVED_FIELDS) and btc["clone"] is False
        one = await client._get("exchangeInfo", data={"symbol": "ETHUSDT"})
        assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
        some = await client._get(
            "exchangeInfo", data={"symbols": json.dumps(["ETHUSDT", "BTCUSDT"], separators=(",", ":"))}
        )
        assert [s["symbol"] for s in some["symbols"]] == ["ETHUSDT", "BTCUSDT"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, 400, -1121),
        ({"symbol": "BTCUSDT", "interval": "7m"}, 400, -1120),
        ({"symbol": "BTCUSDT", "interval": "1s"}, 400, -1120),
        ({"symbol": "BTCUSDT"}, 400, -1102),
        ({"interval": "1m"}, 400, -1102),
        ({"symbol": "btc$usdt", "interval": "1m"}, 400, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "abc"}, 400, -1100),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1001}, 400, -1130),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": 10, "endTime": 5}, 400, -1023),
    ],
)
async def test_bad_parameters_get_binance_errors(
    replay: ReplayFactory, params: dict, status: int, code: int
) -> None:
    async with replay(pairs=["BTCUSDT"]) as server, async_client(server) as client:
        with pytest.raises(BinanceAPIException) as err:
            await client.get_klines(**params)
        assert (err.value.status_code, err.value.code) == (status, code)
        assert int(err.value.response.headers["X-MBX-USED-WEIGHT-1M"]) == 2


async def test_unknown_symbol_in_exchange_info_and_book_ticker(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"]) as server, async_client(server) as client:
        for call in (
            client._get("exchangeInfo", data={"symbol": "NOPEUSDT"}),
            client.get_orderbook_ticker(symbol="NOPEUSDT"),
        ):
            with pytest.raises(BinanceAPIException) as err:
                await call
            assert (err.value.status_code, err.value.code, err.value.message) == (
                400,
                -1121,
                "Invalid symbol.",
            )


async def test_async_client_pages_a_whole_recording_with_its_holes(replay: ReplayFactory) -> None:
    start_ms, history = exchange_start_at("ETHBTC", AFTER_THE_END_MS)
    (rec,) = load_recordings(pairs=["ETHBTC"])
    async with (
        replay(pairs=["ETHBTC"], exchange_start_ms=start_ms, history_ms=history) as server,
        async_client(server) as client,
    ):
        assert server.market.symbols["ETHBTC"].shift_ms == SHIFT_MS
        open_times: list[int] = []
        start = 0
        while rows := await client.get_klines(symbol="ETHBTC", interval="1m", startTime=start, limit=1000):
            assert len(rows) <= 1000 and all(len(r) == 12 and isinstance(r[1], str) for r in rows)
            open_times += [r[0] for r in rows]
            start = rows[-1][0] + 1
        assert client.response.headers["X-Replay-Shift-Ms"] == str(SHIFT_MS)
    assert len(open_times) == len(rec) == 45162
    assert np.array_equal(np.array(open_times) - SHIFT_MS, rec.open_time)
    assert holes(np.array(open_times) - SHIFT_MS) == HOLES_2019


async def test_sync_client_pages_a_recording_and_sees_the_same_rows(replay: ReplayFactory) -> None:
    start_ms, history = exchange_start_at("XRPBTC", AFTER_THE_END_MS)
    (rec,) = load_recordings(pairs=["XRPBTC"])
    async with replay(pairs=["XRPBTC"], exchange_start_ms=start_ms, history_ms=history) as server:

        def page_all() -> list[list]:
            client = Client(ping=False)
            client.API_URL = server.rest_url
            rows, start = [], 0
            while page := client.get_klines(symbol="XRPBTC", interval="1m", startTime=start, limit=1000):
                rows += page
                start = page[-1][0] + 1
            assert int(client.response.headers["X-MBX-USED-WEIGHT-1M"]) == 2 * (len(rows) // 1000 + 2)
            return rows

        rows = await asyncio.to_thread(page_all)
        async with async_client(server) as client:
            sample = await client.get_klines(symbol="XRPBTC", interval="1m", startTime=rows[5000][0], limit=3)
    assert sample == rows[5000:5003]
    assert [r[0] - SHIFT_MS for r in rows] == rec.open_time.tolist()
    first = Candle.from_rest_row(rows[0])
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        rec.open[0],
        rec.high[0],
        rec.low[0],
        rec.close[0],
        rec.volume[0],
    )
    assert first.close_time == first.open_time + 59_999


async def test_only_closed_candles_plus_the_forming_one(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], speed=60) as server, async_client(server) as client:
        rows = await client.get_klines(symbol="BTCUSDT", interval="1m", limit=5)
        now = int(client.response.headers["X-Replay-Now-Ms"])
        *closed, forming = rows
        assert all(r[6] < now for r in closed) and forming[0] <= now <= forming[6]
        sym = server.market.symbols["BTCUSDT"]
        i = sym.forming_index(now)
        assert forming[0] == int(sym.times[i]) and float(forming[5]) <= sym.v[i]
        assert [r[0] for r in rows] == [forming[0] - k * MINUTE_MS for k in range(4, -1, -1)]
        future = await client.get_klines(symbol="BTCUSDT", interval="1m", startTime=now + 10 * MINUTE_MS)
        assert future == []
        hours = await client.get_klines(symbol="BTCUSDT", interval="1h", limit=2)
        assert hours[-1][0] <= now <= hours[-1][6] and float(hours[-1][5]) < sym.v[: i + 1].sum()


async def test_book_ticker_single_and_many(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "ETHUSDT"]) as server, async_client(server) as client:
        one = await client.get_orderbook_ticker(symbol="ETHUSDT")
        assert one["symbol"] == "ETHUSDT" and float(one["bidPrice"]) < float(one["askPrice"])
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "2"
        many = await client.get_orderbook_tickers()
        assert [q["symbol"] for q in many] == ["BTCUSDT", "ETHUSDT"]
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == "6"
        chosen = await client.get_orderbook_tickers(symbols=json.dumps(["ETHUSDT"], separators=(",", ":")))
        assert [q["symbol"] for q in chosen] == ["ETHUSDT"]
        last = float((await client.get_klines(symbol="BTCUSDT", interval="1m", limit=1))[0][4])
        book = await client.get_orderbook_ticker(symbol="BTCUSDT")
        assert abs(float(book["bidPrice"]) / last - 1) < 0.01


async def test_weights_on_every_response(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"]) as server, async_client(server) as client:
        expected = 0
        for call, weight in ((client.ping, 1), (client.get_server_time, 1), (client.get_exchange_info, 20)):
            await call()
            expected += weight
            assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == str(expected)
        await client.get_klines(symbol="BTCUSDT", interval="1m")
        assert client.response.headers["X-MBX-USED-WEIGHT-1M"] == str(expected + 2)
        assert isinstance(server, ReplayServer)
