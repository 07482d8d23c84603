"""A stream hub as a Ray actor: one connection carries up to 500 pairs of a node to their hosts.

Pinned to its node (the connection counts against that node's IP) and restarted by Ray when it
dies. A restarted actor carries nobody: each pair's watchdog finds it no longer carried within two
candle intervals, asks again and repairs over REST what closed meanwhile, so killing a stream
actor loses no minute. Pair hosts see it through :class:`RemoteHub`.
"""

from __future__ import annotations

import ray

from cryptocast.actors.budget_actor import RayBudget, node_budget
from cryptocast.actors.nodes import NAMESPACE, pinned, stream_name
from cryptocast.actors.streamhub import CONNECTION_LIFETIME_MS, Event, Sink, StreamHub
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.logs import setup_worker_logging

STREAM_CPUS = 0.02


@ray.remote(num_cpus=STREAM_CPUS, max_restarts=-1)
class StreamActor:
    def __init__(
        self, rest_url: str, stream_url: str, weight_limit: int, connection_lifetime_ms: int
    ) -> None:
        setup_worker_logging()
        node = ray.get_runtime_context().get_node_id()
        exchange = BinanceExchange(rest_url=rest_url, stream_url=stream_url)
        self.hub = StreamHub(
            exchange,
            RayBudget(node_budget(node, weight_limit)),
            connection_lifetime_ms=connection_lifetime_ms,
        )

    async def add(self, symbol: str, host: ray.actor.ActorHandle) -> None:
        async def to_host(pair: str, events: list[Event]) -> None:
            await host.deliver.remote(pair, events)

        await self.hub.add(symbol, to_host)

    async def remove(self, symbol: str) -> None:
        await self.hub.remove(symbol)

    async def carries(self, symbol: str) -> bool:
        return await self.hub.carries(symbol)

    def status(self) -> dict:
        return self.hub.status()


def node_stream_actor(
    node_id: str,
    index: int,
    rest_url: str,
    stream_url: str,
    weight_limit: int,
    connection_lifetime_ms: int = CONNECTION_LIFETIME_MS,
) -> ray.actor.ActorHandle:
    """Stream actor ``index`` of ``node_id``, started on that node by whoever asks first."""
    return StreamActor.options(  # type: ignore[attr-defined]  # mypy keeps a decorated class's type: @ray.remote made it an ActorClass
        name=stream_name(node_id, index),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=pinned(node_id),
    ).remote(rest_url, stream_url, weight_limit, connection_lifetime_ms)


class RemoteHub:
    """A pair host's view of its stream actor: subscriptions out, deliveries in."""

    def __init__(self, actor: ray.actor.ActorHandle, host: ray.actor.ActorHandle) -> None:
        self.actor = actor
        self.host = host
        self.sinks: dict[str, Sink] = {}

    async def add(self, symbol: str, sink: Sink) -> None:
        self.sinks[symbol] = sink
        await self.actor.add.remote(symbol, self.host)

    async def remove(self, symbol: str) -> None:
        self.sinks.pop(symbol, None)
        await self.actor.remove.remote(symbol)

    async def carries(self, symbol: str) -> bool:
        return await self.actor.carries.remote(symbol)

    async def deliver(self, symbol: str, events: list[Event]) -> None:
        sink = self.sinks.get(symbol)
        if sink is not None:
            await sink(symbol, events)
