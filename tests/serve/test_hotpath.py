"""Fresh cached answers sent before FastAPI: the same bytes and headers as the route, and counted."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import Request, Response
from fastapi.routing import APIRoute

from cryptocast.serve import metrics
from cryptocast.serve.api.app import new_api
from cryptocast.serve.encoded import Prepared, Renewing, encode, respond
from cryptocast.serve.hotpath import HotAnswers
from cryptocast.serve.hotreads import REUSE_EXCHANGE_S, REUSE_WALL_S, reuse_s

TTL_S = 0.3
ROUTE = "/items/{name}"
BIG = encode(
    {"rows": [[i, i * 1.5, "2025-03-30T12:00:00+00:00"] for i in range(200)], "freshness": {"as_of": "now"}}
)
SMALL = encode({"rows": [], "freshness": {"as_of": "now"}})


@pytest.fixture
def served() -> tuple:
    """The API's own app and middleware, with one route that fills the hot answers as ``latest`` does."""
    app = new_api()
    calls: list[str] = []

    @app.get(ROUTE)
    async def item(name: str, request: Request) -> Response:
        calls.append(name)
        answer = BIG if name == "big" else SMALL
        request.app.hot.put(request.scope, answer, time.monotonic() + TTL_S)
        return respond(answer, request)

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return client, calls


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert sorted(a.headers.multi_items()) == sorted(b.headers.multi_items())


@pytest.mark.parametrize("name", ["big", "small"])
@pytest.mark.parametrize(
    "headers",  # httpx accepts gzip unless told otherwise
    [
        {"Accept-Encoding": "identity"},
        {"Accept-Encoding": "gzip"},
        {"Accept-Encoding": "gzip, br"},
        {"Accept-Encoding": "identity", "If-None-Match": BIG.etag},
    ],
)
async def test_a_hit_is_the_routes_answer_without_the_route(served, name: str, headers: dict) -> None:
    client, calls = served
    first = await client.get(f"/items/{name}", headers=headers)  # through FastAPI, fills the entry
    second = await client.get(f"/items/{name}", headers=headers)
    assert calls == [name]  # the second never reached the route
    _same(first, second)
    if name == "big" and "gzip" in headers["Accept-Encoding"]:
        assert second.headers["content-encoding"] == "gzip"
    if name == "big" and "If-None-Match" in headers:
        assert second.status_code == 304 and second.content == b""


async def test_what_fastapi_must_see_goes_through_it(served) -> None:
    client, calls = served
    await client.get("/items/big")
    await client.get("/items/big", params={"x": 1})  # another query string: its own entry
    await client.get("/items/big", params={"x": 1})
    await client.get("/items/big", params={"x": 2})
    await client.get("/items/big", headers={"Origin": "http://elsewhere"})  # CORS decides
    await client.post("/items/big")  # not a GET: FastAPI answers 405
    await client.get("/items/BIG")  # another path: its own entry
    assert calls == ["big", "big", "big", "big", "BIG"]
    await asyncio.sleep(TTL_S * 1.2)
    await client.get("/items/big")  # expired
    assert calls[-1] == "big" and len(calls) == 6


async def test_hits_are_counted_under_the_route(served) -> None:
    client, _ = served

    def count() -> float:
        return (
            metrics.registry.get_sample_value(
                "cryptocast_api_requests_total", {"route": ROUTE, "status": "200"}
            )
            or 0.0
        )

    before = count()
    for _ in range(5):
        assert (await client.get("/items/small")).status_code == 200
    assert count() - before == 5


def test_entries_are_bounded_oldest_first() -> None:
    def scope(path: str) -> dict:
        return {"path": path, "query_string": b"", "route": APIRoute(ROUTE, lambda: None)}

    hot = HotAnswers(max_entries=3)
    for i in range(5):
        hot.put(scope(f"/p/{i}"), SMALL, time.monotonic() + 60)
    assert list(hot.entries) == ["/p/2", "/p/3", "/p/4"]
    hot.put(scope("/p/9"), SMALL, time.monotonic() - 1)  # already expired: kept out of answers
    assert hot.get(scope("/p/9")) is None and hot.get(scope("/p/4")).route == ROUTE


def test_news_ends_a_tags_entries() -> None:
    def scope(path: str) -> dict:
        return {"path": path, "query_string": b"", "route": APIRoute(ROUTE, lambda: None)}

    hot = HotAnswers()
    for path, tag in (("/a/1", "A"), ("/a/2", "A"), ("/b/1", "B")):
        hot.put(scope(path), SMALL, time.monotonic() + 60, tag)
    hot.drop("A")
    assert list(hot.entries) == ["/b/1"]
    hot.drop(None)
    assert hot.entries == {}


async def test_a_renewing_answer_keeps_its_data_and_moves_its_clock() -> None:
    app = new_api()
    ticks = iter(range(1000))

    def stamp(_fresh: dict) -> dict:
        return {"data_lag_s": next(ticks)}

    renewing = Renewing(Prepared({"rows": [[1, 2.5]] * 100}), {"last_candle_time": "t"}, stamp, lambda: 0.05)
    calls: list[str] = []

    @app.get(ROUTE)
    async def item(name: str, request: Request) -> Response:
        calls.append(name)
        request.app.hot.put(request.scope, renewing, time.monotonic() + 60, name)
        return respond(renewing.current(), request)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        first, second = [(await client.get("/items/x")) for _ in range(2)]
        await asyncio.sleep(0.06)
        third = await client.get("/items/x")
    assert calls == ["x"]  # one trip through FastAPI; the rest were hot answers
    bodies = [r.json() for r in (first, second, third)]
    assert [b["freshness"]["data_lag_s"] for b in bodies] == [0, 0, 1]  # renewed once its period passed
    assert all(b["rows"] == bodies[0]["rows"] for b in bodies)
    assert {r.headers["etag"] for r in (first, second, third)} == {
        first.headers["etag"]
    }  # the clock is not data


def test_reuse_is_bounded_on_both_clocks() -> None:
    assert reuse_s(1.0) == REUSE_WALL_S == 0.5  # live exchange: half a second
    assert reuse_s(60.0) == pytest.approx(REUSE_EXCHANGE_S / 60)  # a 60x replay: one exchange second
    assert reuse_s(0.5) == REUSE_WALL_S


async def test_an_expired_entry_is_sent_while_the_route_renews_it() -> None:
    app = new_api()
    calls: list[int] = []
    slow, fail = asyncio.Event(), []

    @app.get(ROUTE)
    async def item(name: str, request: Request) -> Response:
        calls.append(len(calls) + 1)
        if len(calls) > 1:
            await slow.wait()  # a renewal that takes its time (a saturated event loop)
        if fail:
            raise RuntimeError("database away")
        answer, now = encode({"n": calls[-1]}), time.monotonic()
        request.app.hot.put(request.scope, answer, now + TTL_S, name, lambda: item(name, request), now + 60)
        return respond(answer, request)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
    ) as client:
        assert (await client.get("/items/x")).json() == {"n": 1}
        await asyncio.sleep(TTL_S * 1.2)
        during = [(await asyncio.wait_for(client.get("/items/x"), 5)).json()["n"] for _ in range(3)]
        await asyncio.sleep(0.01)
        assert during == [1, 1, 1] and calls == [1, 2]  # the old answer meanwhile; one renewal
        slow.set()
        while app.hot.renewing:
            await asyncio.sleep(0.01)
        assert (await client.get("/items/x")).json() == {"n": 2} and calls == [1, 2]
        await asyncio.sleep(TTL_S * 1.2)
        fail.append(True)
        assert (await client.get("/items/x")).json() == {"n": 2}  # starts a renewal, which fails...
        while app.hot.renewing:
            await asyncio.sleep(0.01)
        assert "/items/x" not in app.hot.entries  # ...so the entry is gone and FastAPI answers next
        assert (await client.get("/items/x")).status_code == 500
