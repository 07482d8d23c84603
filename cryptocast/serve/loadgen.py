"""An HTTP load loop for the serving benchmark: ``concurrency`` workers, bounded in count and time.

Each worker sends its next request as soon as the previous answer is read (closed loop), so the
throughput is what the server sustains at that concurrency and the latencies include its queueing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    method: str
    path: str
    json: dict | None = None
    params: dict | None = None
    headers: dict = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


async def run_load(
    client: httpx.AsyncClient, target: Target, concurrency: int, seconds: float, max_requests: int
) -> dict:
    """Requests/s, latency percentiles (ms), status counts and wire bytes/s for one target."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wire_bytes = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal wire_bytes, sent
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            reply = await client.request(target.method, target.path, json=target.json, params=target.params,
                                         headers=target.headers)  # fmt: skip
            latencies.append(time.perf_counter() - t0)
            statuses[reply.status_code] += 1
            wire_bytes += reply.num_bytes_downloaded

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "concurrency": concurrency,
        "requests": len(ms),
        "seconds": round(elapsed, 3),
        "rps": round(len(ms) / elapsed, 1),
        "p50_ms": _round(percentile(ms, 50)),
        "p99_ms": _round(percentile(ms, 99)),
        "max_ms": _round(max(ms, default=None)),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wire_bytes_per_s": round(wire_bytes / elapsed),
        "wire_bytes_per_request": round(wire_bytes / max(len(ms), 1)),
    }


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None
