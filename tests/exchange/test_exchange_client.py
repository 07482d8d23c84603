"""BinanceExchange, the project's one exchange interface, and the replay as a standalone program."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from binance import Client

from cryptocast.exchange.binance import BinanceExchange, BookQuote, KlineUpdate
from cryptocast.exchange.market import DERIVED_FIELDS
from cryptocast.records import DERIVABLE_FIELDS, MINUTE_MS, Provenance
from cryptocast.settings import Settings

from .conftest import ReplayFactory, exchange_for

STARTUP_TIMEOUT_S = 60


async def test_urls_come_from_settings() -> None:
    async with (
        BinanceExchange(Settings(replay_port=9999)) as replay,
        BinanceExchange(Settings(exchange="testnet")) as testnet,
    ):
        assert replay.API_URL == "http://127.0.0.1:9999/api"
        assert replay.socket_manager().STREAM_URL == "ws://127.0.0.1:9999/"
        assert Settings(exchange="testnet").rest_url == testnet.API_URL
        assert Settings(exchange="testnet").stream_url == testnet.socket_manager().STREAM_URL


async def test_klines_page_separates_the_forming_candle(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], speed=60) as server, exchange_for(server) as exchange:
        page = await exchange.klines("BTCUSDT", limit=10)
        assert len(page.candles) == 9 and page.forming is not None
        assert page.used_weight == 20 + 2  # the exchangeInfo that told which fields are derived, then klines
        assert exchange.used_weight == 22
        now = exchange.exchange_now_ms()
        assert all(c.close_time < now for c in page.candles) and page.forming.close_time >= now
        assert all(
            c.derived_fields == DERIVABLE_FIELDS and c.provenance is Provenance.REST for c in page.candles
        )
        assert await exchange.derived_fields("BTCUSDT") == DERIVED_FIELDS
        older = await exchange.klines("BTCUSDT", start_ms=page.candles[0].open_time - 5 * MINUTE_MS, limit=5)
        assert [c.open_time for c in older.candles] == [
            page.candles[0].open_time - k * MINUTE_MS for k in range(5, 0, -1)
        ]
        assert older.forming is None and older.used_weight == 24


async def test_book_ticker_is_marked_derived(replay: ReplayFactory) -> None:
    async with replay(pairs=["ETHUSDT"]) as server, exchange_for(server) as exchange:
        quote = await exchange.book_ticker("ETHUSDT")
        assert isinstance(quote, BookQuote) and quote.derived and quote.bid_price < quote.ask_price


async def test_streams_yield_typed_updates_equal_to_rest(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT", "LTCBTC"]) as server, exchange_for(server) as exchange:
        async with exchange.stream(["ltcbtc@kline_1m", "btcusdt@bookTicker"], stall_timeout_s=2) as stream:
            closed: list[KlineUpdate] = []
            books: list[BookQuote] = []
            while len(closed) < 2 or not books:
                update = await stream.recv()
                if isinstance(update, KlineUpdate):
                    assert update.symbol == "LTCBTC" and update.candle.provenance is Provenance.WEBSOCKET
                    closed += [update] if update.closed else []
                else:
                    books.append(update)
        assert books[0].derived and books[0].update_id is not None
        for update in closed:
            page = await exchange.klines("LTCBTC", start_ms=update.candle.open_time, limit=1)
            rest = page.candles[0]
            fields = (
                "open_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "close_time",
                "quote_volume",
                "trades",
                "taker_buy_base",
                "taker_buy_quote",
                "derived_fields",
            )
            assert [getattr(rest, f) for f in fields] == [getattr(update.candle, f) for f in fields]


async def test_clones_serve_like_any_pair(replay: ReplayFactory) -> None:
    async with replay(pairs=["BTCUSDT"], clones={"BTCUSDT": 3}) as server, exchange_for(server) as exchange:
        info = await exchange.exchange_info()
        flags = {s["symbol"]: (s["clone"], s["cloneOf"]) for s in info["symbols"]}
        assert flags == {"BTCUSDT": (False, None), **{f"BTCUSDT_C0{k}": (True, "BTCUSDT") for k in (1, 2, 3)}}
        original = await exchange.klines("BTCUSDT", limit=3)
        # The replay's clock runs fast: ask the clone for the same minutes, not "the latest three".
        first, count = original.candles[0].open_time, len(original.candles)
        clone = await exchange.klines("BTCUSDT_C03", start_ms=first, limit=count)
        assert [c.open_time for c in clone.candles] == [c.open_time for c in original.candles]
        assert all(
            abs(c.close / o.close - 1.003) < 1e-4
            for c, o in zip(clone.candles, original.candles, strict=True)
        )
        async with exchange.kline_stream(["BTCUSDT_C02"], stall_timeout_s=2) as stream:
            assert (await stream.recv()).symbol == "BTCUSDT_C02"


async def test_restart_continues_the_timeline(replay: ReplayFactory, tmp_path: Path) -> None:
    async with replay(pairs=["ETHBTC"], state_dir=tmp_path) as server, exchange_for(server) as exchange:
        first = (await exchange.klines("ETHBTC", start_ms=0, limit=1)).candles[0]
        shift = server.market.symbols["ETHBTC"].shift_ms
    async with (
        replay(pairs=["ETHBTC"], state_dir=tmp_path, speed=60) as server,
        exchange_for(server) as exchange,
    ):
        assert (await exchange.klines("ETHBTC", start_ms=0, limit=1)).candles[0] == first
        assert server.market.symbols["ETHBTC"].shift_ms == shift
    async with replay(pairs=["ETHBTC"], state_dir=tmp_path, reset=True) as server:
        assert server.timeline.wall_start_ms > 0 and (tmp_path / "epoch.json").exists()


def test_standalone_replay_serves_any_binance_client(tmp_path: Path) -> None:
    """``cryptocast exchange replay`` as its own process; the sync python-binance Client talks to it."""
    env = {**os.environ, "CRYPTOCAST_DATA_DIR": str(tmp_path)}
    command = str(Path(sys.executable).parent / "cryptocast")
    args = [
        command,
        "exchange",
        "replay",
        "--port",
        "0",
        "--speed",
        "60",
        "--pairs",
        "BTCUSDT",
        "--clone",
        "BTCUSDT:1",
        "--faults",
        "latency=1",
    ]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/api)", line)
        assert match, line
        client = Client(ping=False)
        client.API_URL = match[1]
        assert client.ping() == {}
        symbols = [s["symbol"] for s in client.get_exchange_info()["symbols"]]
        assert symbols == ["BTCUSDT", "BTCUSDT_C01"]
        assert len(client.get_klines(symbol="BTCUSDT_C01", interval="1m", limit=2)) == 2
        assert (tmp_path / "replay" / "epoch.json").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=STARTUP_TIMEOUT_S)
