"""How fast the replay exchange serves: klines pages/s and socket messages/s, as JSON.

The replay runs in its own process (as ``cryptocast exchange replay`` would); the clients here are
python-binance's AsyncClient for REST paging and plain aiohttp websockets for streams, so the
numbers say whether the replay can be a bottleneck for ingestion benchmarks.

    .venv/bin/python bench/exchange.py [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from multiprocessing.queues import Queue

import aiohttp
from binance import AsyncClient

from cryptocast.exchange.clock import DAY_MS
from cryptocast.exchange.server import ReplayConfig, ReplayServer

PAGE_ROWS = 1000
SPEED = 20_000.0  # fast enough that every stream closes many candles per wall second
HISTORY_MS = 20 * DAY_MS  # ≥ 20 days of closed minutes per pair to page through, days still to replay
CLONES = {"BTCUSDT": 13}  # 20 pairs in all
NO_WEIGHT_LIMIT = 10**12  # Binance would cap paging at 3000 pages/min; measure the server, not the cap


def serve(config: ReplayConfig, ports: Queue) -> None:
    async def main() -> None:
        async with ReplayServer(config) as server:
            ports.put((server.port, list(server.market.symbols)))
            await asyncio.Event().wait()

    asyncio.run(main())


async def page_symbol(rest_url: str, symbols: list[str], deadline: float) -> int:
    """Page 1000-row klines from the oldest bar, pair after pair, until the deadline."""
    client = AsyncClient()
    client.API_URL = rest_url
    pages = 0
    try:
        while time.monotonic() < deadline:
            for symbol in symbols:
                start = 0
                while time.monotonic() < deadline:
                    rows = await client.get_klines(
                        symbol=symbol, interval="1m", startTime=start, limit=PAGE_ROWS
                    )
                    if len(rows) < PAGE_ROWS:
                        break
                    pages += 1
                    start = rows[-1][0] + 1
    finally:
        await client.close_connection()
    return pages


async def klines_rate(rest_url: str, symbols: list[str], clients: int, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    counts = await asyncio.gather(
        *(page_symbol(rest_url, symbols[i::clients] or symbols, deadline) for i in range(clients))
    )
    return sum(counts) / (time.monotonic() - started)


async def count_messages(url: str, seconds: float) -> int:
    received = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(ws.receive(), timeout=left)
            except TimeoutError:
                break
            received += 1
    return received


async def socket_rate(port: int, symbols: list[str], connections: int, seconds: float) -> tuple[float, int]:
    streams = [f"{s.lower()}@kline_1m" for s in symbols] + [f"{s.lower()}@bookTicker" for s in symbols]
    url = f"ws://127.0.0.1:{port}/stream?streams={'/'.join(streams)}"
    started = time.monotonic()
    counts = await asyncio.gather(*(count_messages(url, seconds) for _ in range(connections)))
    return sum(counts) / (time.monotonic() - started), len(streams)


async def measure(port: int, symbols: list[str], seconds: float, clients: int) -> dict:
    rest_url = f"http://127.0.0.1:{port}/api"
    single = await klines_rate(rest_url, symbols, 1, seconds)
    concurrent = await klines_rate(rest_url, symbols, clients, seconds)
    messages, streams = await socket_rate(port, symbols, clients, seconds)
    return {
        "klines": {
            "rows_per_page": PAGE_ROWS,
            "pages_per_s_1_client": round(single, 1),
            f"pages_per_s_{clients}_clients": round(concurrent, 1),
        },
        "sockets": {
            "connections": clients,
            "streams_per_connection": streams,
            "speed": SPEED,
            "messages_per_s": round(messages),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent REST clients and socket connections"
    )
    args = parser.parse_args()
    config = ReplayConfig(speed=SPEED, history_ms=HISTORY_MS, clones=CLONES, weight_limit=NO_WEIGHT_LIMIT)
    context = multiprocessing.get_context("spawn")
    ports: Queue = context.Queue()
    server = context.Process(target=serve, args=(config, ports), daemon=True)
    server.start()
    try:
        port, symbols = ports.get(timeout=120)
        result = asyncio.run(measure(port, symbols, args.seconds, args.clients))
    finally:
        server.terminate()
        server.join()
    result["setup"] = {
        "pairs": len(symbols),
        "seconds_per_measurement": args.seconds,
        "cpus": os.cpu_count(),
        "server": "separate process; clients: python-binance AsyncClient (REST), aiohttp (websockets)",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
