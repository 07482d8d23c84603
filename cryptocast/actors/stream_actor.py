"""A stream hub as a Ray actor: one connection carries up to 500 pairs of a node to their hosts.

Pinned to its node (the connection counts against that node's IP) and restarted by Ray when it
dies. A restarted actor carries nobody: each pair's watchdog finds it no longer carried within two
candle intervals, asks again and repairs over REST what closed meanwhile, so killing a stream
actor loses no minute. Pair hosts see it through :class:`RemoteHub`.
"""

from __future__ import annotations

import asyncio

import ray

from cryptocast import heap
from cryptocast.actors.budget_actor import RayBudget, node_budget
from cryptocast.actors.nodes import NAMESPACE, pinned, stream_name
from cryptocast.actors.streamhub import CONNECTION_LIFETIME_MS, PAIRS_PER_CONNECTION, Event, Sink, StreamHub
from cryptocast.exchange.binance import BinanceExchange
from cryptocast.logs import setup_worker_logging

STREAM_CPUS = 0.02
# Closed candles of one minute arrive together: those that reach the actor within this long go to
# their host in one call (one Ray round trip for a host's pairs, not one per pair).
BATCH_S = 0.002
QUEUE_SIZE = 10 * PAIRS_PER_CONNECTION


@ray.remote(num_cpus=STREAM_CPUS, max_restarts=-1)
class StreamActor:
    def __init__(
        self, rest_url: str, stream_url: str, weight_limit: int, connection_lifetime_ms: int
    ) -> None:
        setup_worker_logging()
        node = ray.get_runtime_context().get_node_id()
        # python-binance stops reading when its queue overflows: a minute's close of 500 pairs is a
        # burst of over a thousand messages, far beyond its default of 100.
        exchange = BinanceExchange(rest_url=rest_url, stream_url=stream_url, max_queue_size=QUEUE_SIZE)
        self.hub = StreamHub(
            exchange,
            RayBudget(node_budget(node, weight_limit)),
            connection_lifetime_ms=connection_lifetime_ms,
        )

        self.outboxes: dict[str, Outbox] = {}  # by host actor id
        heap.settle()  # what the process made to start lives as long as it does

    async def add(self, symbol: str, host: ray.actor.ActorHandle) -> None:
        outbox = self.outboxes.setdefault(host._actor_id.hex(), Outbox(host))
        await self.hub.add(symbol, outbox.send)

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


class Outbox:
    """One host's deliveries, sent together: what arrives within ``BATCH_S`` shares one call."""

    def __init__(self, host: ray.actor.ActorHandle) -> None:
        self.host = host
        self.batch: list[tuple[str, list[Event]]] = []
        self.sent: asyncio.Future[None] | None = None

    async def send(self, symbol: str, events: list[Event]) -> None:
        """Returns once the host has taken the batch these events went in (its error, if not)."""
        self.batch.append((symbol, events))
        if self.sent is None:
            self.sent = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(BATCH_S, self._flush)
        await asyncio.shield(self.sent)

    def _flush(self) -> None:
        batch, sent = self.batch, self.sent
        self.batch, self.sent = [], None
        assert sent is not None
        call: asyncio.Future[None] = asyncio.ensure_future(self.host.deliver_many.remote(batch))
        call.add_done_callback(lambda done: _settle(sent, done))


def _settle(sent: asyncio.Future[None], done: asyncio.Future) -> None:
    if done.cancelled():
        sent.cancel()
    elif (error := done.exception()) is not None:
        sent.set_exception(error)
    else:
        sent.set_result(None)


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
