"""The benchmark's two load generators agree on what a server did, against a real local server."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from bench.lib.loadgen import Target, run_load, run_wrk

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is installed by scripts/system-deps.sh"
)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict]]]:
    """Answers 200 with what it was sent, or 503 when asked to fail; remembers every request."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "query": dict(request.query),
                "body": body,
                "headers": dict(request.headers),
            }
        )
        status = 503 if request.query.get("fail") else 200
        return web.json_response({"n": len(body)}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_wrk_sends_the_target_as_the_python_loop_does(server) -> None:
    url, seen = server
    target = Target(
        "t",
        "POST",
        "/pairs/X/predict",
        json={"candles": [{"open": 1.5}]},
        params={"start": "2025-03-01T00:00:00+00:00"},
        headers={"Accept-Encoding": "gzip"},
    )
    result = await run_wrk(url, target, 2, 1.0)
    assert result["client"] == "wrk" and 0 <= len(seen) - result["requests"] <= 2  # cut off in flight
    assert result["requests"] > 0 and result["statuses"] == {
        "2xx": result["requests"],
        "non_2xx": 0,
        "socket_errors": 0,
    }
    request = seen[0]
    assert request["method"] == "POST" and request["query"] == target.params
    assert json.loads(request["body"]) == target.json and request["headers"]["Accept-Encoding"] == "gzip"
    async with httpx.AsyncClient(base_url=url) as client:
        python = await run_load(client, target, 2, 1.0, 50)
    assert python["client"] == "httpx" and python["statuses"] == {"200": python["requests"]}
    assert (
        json.loads(seen[-1]["body"]) == json.loads(request["body"]) and seen[-1]["query"] == request["query"]
    )


async def test_wrk_counts_errors_and_its_timing_is_plausible(server) -> None:
    url, seen = server
    result = await run_wrk(url, Target("t", "GET", "/x", params={"fail": "1"}), 4, 1.0)
    assert (
        result["statuses"]["non_2xx"] == result["requests"] > 0 and 0 <= len(seen) - result["requests"] <= 4
    )
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"] < 1000
    assert result["rps"] == pytest.approx(result["requests"] / result["seconds"], rel=0.01)


async def test_wrk_that_cannot_connect_says_so() -> None:
    with pytest.raises(RuntimeError, match="wrk"):
        await asyncio.wait_for(run_wrk("http://127.0.0.1:9", Target("t", "GET", "/"), 1, 1.0), 30)
