"""HTTP load for the serving benchmark (:mod:`bench.lib.serving`): ``concurrency`` closed loops,
bounded in time, reporting requests/s, latency percentiles, statuses and bytes on the wire.

Each worker sends its next request as soon as the previous answer is read (closed loop), so the
throughput is what the server sustains at that concurrency and the latencies include its queueing.
On 2 cores the load generator shares the CPU with the server, so its own cost matters: ``wrk``
(C, one thread) is used when installed; the Python loop (``httpx``) is the fallback, and it costs
the server a large share of the machine (a no-op Serve replica: ~2,350 req/s under wrk, ~320 under
httpx). Every result names its client.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

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
            reply = await client.request(
                target.method, target.path, json=target.json, params=target.params, headers=target.headers
            )
            latencies.append(time.perf_counter() - t0)
            statuses[reply.status_code] += 1
            wire_bytes += reply.num_bytes_downloaded

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "client": "httpx",
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


WRK = shutil.which("wrk")
WRK_TIMEOUT_S = 10
# wrk's Lua hooks: the request (method, body, headers) and, when done, one JSON line of results
_WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  io.write(string.format('{{"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua(text: str) -> str:
    return "[==[" + text + "]==]"


async def run_wrk(base_url: str, target: Target, concurrency: int, seconds: float) -> dict:
    """The same measurement as :func:`run_load`, made by ``wrk`` (one thread) instead of Python."""
    headers = dict(target.headers)
    body = ""
    if target.json is not None:
        body, headers["Content-Type"] = json.dumps(target.json), "application/json"
    url = base_url + target.path + (f"?{urlencode(target.params)}" if target.params else "")
    script = _WRK_SCRIPT.format(
        method=_lua(target.method),
        body=_lua(body) if body else "nil",
        headers="\n".join(f"wrk.headers[ {_lua(k)} ] = {_lua(v)}" for k, v in headers.items()),
    )
    with tempfile.TemporaryDirectory(prefix="cryptocast-wrk-") as tmp:
        path = Path(tmp) / "target.lua"
        path.write_text(script)
        proc = await asyncio.create_subprocess_exec(
            WRK or "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={WRK_TIMEOUT_S}s",
            "-s",
            str(path),
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode().strip() or out.decode()[-500:]}")
    r = json.loads(lines[-1])
    elapsed = r["duration_us"] / 1e6
    ok = r["requests"] - r["non_2xx"]
    return {
        "client": "wrk",
        "concurrency": concurrency,
        "requests": r["requests"],
        "seconds": round(elapsed, 3),
        "rps": round(r["requests"] / elapsed, 1),
        "p50_ms": _round(r["p50_us"] / 1000),
        "p99_ms": _round(r["p99_us"] / 1000),
        "max_ms": _round(r["max_us"] / 1000),
        "statuses": {"2xx": ok, "non_2xx": r["non_2xx"], "socket_errors": r["socket_errors"]},
        "wire_bytes_per_s": round(r["bytes"] / elapsed),
        "wire_bytes_per_request": round(r["bytes"] / max(r["requests"], 1)),
    }
