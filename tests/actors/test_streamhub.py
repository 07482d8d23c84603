"""One connection carries many pairs: the stream hub against the replay, through python-binance."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from binance.exceptions import BinanceAPIException

from cryptocast.actors.budget import LocalBudget
from cryptocast.actors.stream_actor import QUEUE_SIZE
from cryptocast.actors.streamhub import PAIRS_PER_CONNECTION, URL_STREAMS, Event, HubFull, Resumed, StreamHub
from cryptocast.exchange.binance import BinanceExchange, BookQuote, KlineUpdate
from cryptocast.exchange.server import ReplayConfig, ReplayServer
from tests.helpers import eventually

# More pairs than the connection URL names: the rest arrive by SUBSCRIBE, in batches.
CLONES = URL_STREAMS  # 41 pairs = 82 streams


class Received:
    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = defaultdict(list)

    async def sink(self, symbol: str, events: list[Event]) -> None:
        self.events[symbol].extend(events)

    def closed(self, symbol: str) -> list[KlineUpdate]:
        return [e for e in self.events[symbol] if isinstance(e, KlineUpdate)]


async def test_one_connection_carries_every_pair_to_its_sink() -> None:
    config = ReplayConfig(speed=600.0, pairs=["BTCUSDT"], clones={"BTCUSDT": CLONES})
    # A minute's close of 42 pairs is ~125 messages at once: python-binance's default queue of 100
    # overflows, so the client is sized as the stream actor sizes it.
    async with (
        ReplayServer(config) as server,
        BinanceExchange(
            rest_url=server.rest_url, stream_url=server.stream_url, max_queue_size=QUEUE_SIZE
        ) as exchange,
    ):
        symbols = sorted(server.market.symbols)
        budget = LocalBudget()
        hub, received = StreamHub(exchange, budget), Received()
        try:
            await hub.add(symbols[0], received.sink)  # opens the connection
            await asyncio.gather(*(hub.add(s, received.sink) for s in symbols[1:]))  # SUBSCRIBE, batched
            await eventually(
                lambda: asyncio.sleep(0, {s: len(received.closed(s)) for s in symbols}),
                "two closed candles for every pair",
                timeout_s=30,
                until=lambda counts: min(counts.values()) >= 2,
            )
            assert await hub.carries(symbols[-1]) and not await hub.carries("NOSUCHPAIR")
        finally:
            await hub.close()
    assert hub.counters.connections_opened == 1 and budget.budget.connections_opened == 1
    for symbol in symbols:
        closed = received.closed(symbol)
        assert all(e.closed and e.symbol == symbol for e in closed)
        opens = [e.candle.open_time for e in closed]
        assert opens == sorted(set(opens)), "each minute once, in order"
        quotes = [e for e in received.events[symbol] if isinstance(e, BookQuote)]
        assert all(q.symbol == symbol for q in quotes)
        assert len(quotes) <= len(closed), "a quote travels only with the candle that follows it"


async def test_a_dropped_connection_is_replaced_and_every_pair_told_to_repair() -> None:
    config = ReplayConfig(speed=600.0, pairs=["BTCUSDT", "ETHUSDT"])
    async with (
        ReplayServer(config) as server,
        BinanceExchange(rest_url=server.rest_url, stream_url=server.stream_url) as exchange,
    ):
        hub, received = StreamHub(exchange, LocalBudget()), Received()
        try:
            for symbol in ("BTCUSDT", "ETHUSDT"):
                await hub.add(symbol, received.sink)
            await eventually(
                lambda: asyncio.sleep(0, len(received.closed("ETHUSDT"))), "a candle", until=bool
            )
            server.faults.apply({"drop": 0.3}, {"BTCUSDT", "ETHUSDT"})  # every 0.3 s
            await asyncio.sleep(1.5)
            server.faults.apply({"drop": 0}, {"BTCUSDT", "ETHUSDT"})
            await eventually(
                lambda: asyncio.sleep(0, [e for e in received.events["BTCUSDT"] if isinstance(e, Resumed)]),
                "the pair told of the replaced connection",
                timeout_s=30,
                until=bool,
            )
            before = len(received.closed("ETHUSDT"))
            await eventually(
                lambda: asyncio.sleep(0, len(received.closed("ETHUSDT"))),
                "candles again after the replacement",
                timeout_s=30,
                until=lambda n: n > before,
            )
        finally:
            await hub.close()
    assert hub.counters.failures >= 1 and hub.counters.connections_opened >= 2
    assert any(isinstance(e, Resumed) for e in received.events["ETHUSDT"])


async def test_a_pair_the_exchange_does_not_list_is_refused_and_the_others_stream_on() -> None:
    async with (
        ReplayServer(ReplayConfig(speed=600.0, pairs=["BTCUSDT"])) as server,
        BinanceExchange(rest_url=server.rest_url, stream_url=server.stream_url) as exchange,
    ):
        hub = StreamHub(exchange, LocalBudget())
        try:
            await hub.add("BTCUSDT", Received().sink)
            with pytest.raises(BinanceAPIException, match="Invalid symbol"):
                await hub.add("NOSUCHPAIR", Received().sink)
            assert not await hub.carries("NOSUCHPAIR") and await hub.carries("BTCUSDT")
        finally:
            await hub.close()


async def test_a_full_connection_refuses_one_more_pair() -> None:
    async with BinanceExchange(rest_url="http://127.0.0.1:9/api", stream_url="ws://127.0.0.1:9/") as exchange:
        hub = StreamHub(exchange, LocalBudget())
        hub.sinks = {f"P{i}": Received().sink for i in range(PAIRS_PER_CONNECTION)}
        with pytest.raises(HubFull):  # refused before anything is asked of the exchange
            await hub.add("ONEMORE", Received().sink)


async def test_a_rate_limited_clock_ask_holds_the_budget_and_the_pair_is_carried_after() -> None:
    """The hub's exchange-clock asks obey ``Retry-After`` as a pair's calls do: a start into a 429
    storm waits (the budget holds every caller on the IP) instead of failing the pair that asked,
    whose restart would ask again at once and turn the 429 into a ban."""
    config = ReplayConfig(speed=600.0, pairs=["BTCUSDT"], faults={"storm": 1.5})
    async with (
        ReplayServer(config) as server,
        BinanceExchange(rest_url=server.rest_url, stream_url=server.stream_url) as exchange,
    ):
        budget = LocalBudget()
        hub, received = StreamHub(exchange, budget), Received()
        try:
            await asyncio.wait_for(hub.add("BTCUSDT", received.sink), timeout=30)
            assert await hub.carries("BTCUSDT")
        finally:
            await hub.close()
    assert budget.budget.penalties >= 1, "the 429 was seen and its Retry-After honoured"
    assert hub.clock is not None and hub.clock.measured
