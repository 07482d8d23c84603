"""Every route and its error paths, through the real Serve proxy, against real PostgreSQL and replay."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from cryptocast.serve import errors
from cryptocast.serve.api.predictions import MAX_WINDOW
from cryptocast.serve.bodylimit import MAX_BODY_BYTES
from cryptocast.serve.hotreads import HEALTH_TTL_S
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database
from cryptocast.sql.queries import add_symbol
from cryptocast.sql.schema import commands
from tests.helpers import free_port
from tests.serve.conftest import PAIR, TOKEN

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUGE_BODY_BYTES = 10 * 1024 * 1024


def problem(reply, status: int) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["message"] and body["error"], body
    return body


async def test_reads_carry_freshness_and_page(served, client) -> None:
    pairs = (await client.get("/pairs")).json()["pairs"]
    assert [p["symbol"] for p in pairs] == [PAIR]
    detail = (await client.get(f"/pairs/{PAIR.lower()}")).json()
    assert detail["status"] == "live" and detail["completeness_percent"] == 100.0
    models = (await client.get(f"/models/{PAIR}")).json()
    champion = next(v for v in models["versions"] if v["kind"] == "persistence" and v["status"] == "champion")
    assert (
        detail["serving"]["models"]["persistence"]["version"] == champion["version"]
        and detail["alarm"] is None
    )
    assert detail["freshness"]["models"][0]["kind"] == "persistence"
    first = await client.get(f"/pairs/{PAIR}/candles", params={"limit": 10})
    page = first.json()
    assert len(page["candles"]) == 10 and page["freshness"]["last_candle_time"]
    second = (
        await client.get(f"/pairs/{PAIR}/candles", params={"start": page["next_start"], "limit": 10})
    ).json()
    assert second["candles"][0][0] > page["candles"][-1][0]
    again = await client.get(
        f"/pairs/{PAIR}/candles", params={"limit": 10}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    book = (await client.get(f"/pairs/{PAIR}/top-of-book")).json()
    assert book["top_of_book"] == [] and "freshness" in book
    health = (await client.get("/health")).json()
    assert "database" in health, health
    assert health["database"]["ok"] and health["exchange"]["ok"] and not health["supervisor"]["ok"]
    assert health["pairs"][PAIR]["serving"] == "RUNNING"
    replay = health["exchange"]["replay"]  # the banner's facts: which recordings, shifted how much, how fast
    assert replay["speed"] == 60.0 and replay["recordings"]["BTCUSDT"] == "BTCUSDT-2025-03.parquet"
    assert replay["shift"].endswith("weeks")
    assert (await client.get("/docs")).status_code == 200
    assert "/pairs/{symbol}/predictions/latest" in (await client.get("/openapi.json")).json()["paths"]
    text = (await client.get("/metrics")).text
    assert 'cryptocast_api_requests_total{route="/pairs/{symbol}/candles",status="200"}' in text


async def test_predict_on_demand_from_stored_and_given_windows(served, client) -> None:
    stored = (await client.post(f"/pairs/{PAIR}/predict")).json()
    assert [h["horizon"] for h in stored["forecast"]["horizons"]] == [1, 5, 15, 30]
    h = stored["forecast"]["horizons"][0]
    assert h["lower_95"] <= h["lower_80"] <= h["predicted"] <= h["upper_80"] <= h["upper_95"]
    window = (await client.get(f"/pairs/{PAIR}/candles", params={"limit": 300})).json()[
        "candles"
    ]  # more than the scale reads (240)
    given = [
        {
            "open_time": 1_700_000_000_000 + i * 60_000,
            "open": c[1],
            "high": c[2],
            "low": c[3],
            "close": c[4],
            "volume": c[5],
        }
        for i, c in enumerate(window)
    ]
    mine = (await client.post(f"/pairs/{PAIR}/predict", json={"candles": given})).json()
    assert (
        mine["forecast"]["origin_ms"] == given[-1]["open_time"]
        and mine["forecast"]["close"] == given[-1]["close"]
    )
    problem(await client.post(f"/pairs/{PAIR}/predict", json={"candles": given[:5]}), 409)
    problem(await client.post(f"/pairs/{PAIR}/predict", json={"candles": [{"open_time": 1}]}), 422)


async def test_symbol_and_range_errors_are_json(served, client) -> None:
    assert "not tracked" in problem(await client.get("/pairs/DOGEUSDT"), 404)["message"]
    problem(await client.get("/pairs/x'; DROP TABLE symbols; --"), 422)
    problem(await client.get("/pairs/" + "A" * 500), 422)
    problem(
        await client.get(f"/pairs/{PAIR}/candles", params={"start": "2025-03-02", "end": "2025-03-01"}), 422
    )
    assert (
        "too wide"
        in problem(
            await client.get(f"/pairs/{PAIR}/candles", params={"start": "2024-01-01", "end": "2025-03-01"}),
            422,
        )["message"]
    )
    problem(await client.get(f"/pairs/{PAIR}/candles", params={"limit": 0}), 422)
    problem(await client.get(f"/pairs/{PAIR}/predictions", params={"start": "not a date"}), 422)
    problem(await client.get("/no/such/route"), 404)


async def test_mutations_need_the_token_and_become_commands(served, client, no_commands) -> None:
    problem(await client.post("/pairs", json={"symbol": "ETHUSDT"}), 401)
    problem(
        await client.post("/pairs", json={"symbol": "ETHUSDT"}, headers={"Authorization": "Bearer wrong"}),
        401,
    )
    reason = problem(await client.post("/pairs", json={"symbol": "NOSUCHPAIR"}, headers=AUTH), 404)["message"]
    assert "does not list" in reason
    problem(await client.post("/pairs", json={"symbol": "BTC/USDT"}, headers=AUTH), 422)
    problem(await client.post("/pairs", json={}, headers=AUTH), 422)
    assert (
        problem(await client.post("/pairs", json={"symbol": PAIR}, headers=AUTH), 409)["error"]
        == "already_tracked"
    )
    added = await client.post("/pairs", json={"symbol": "ethusdt"}, headers=AUTH)
    assert added.status_code == 202 and added.json()["symbol"] == "ETHUSDT"
    problem(await client.post("/pairs", json={"symbol": "ETHUSDT"}, headers=AUTH), 409)
    problem(await client.delete("/pairs/ETHUSDT", headers=AUTH), 404)  # requested, not yet tracked
    retrain = await client.post(f"/pairs/{PAIR}/retrain", headers=AUTH)
    assert retrain.status_code == 202
    assert (
        problem(await client.post(f"/pairs/{PAIR}/retrain", headers=AUTH), 409)["error"]
        == "already_requested"
    )
    async with served.db.connect() as conn:
        rows = (await conn.execute(select(commands.c.kind, commands.c.symbol).order_by(commands.c.id))).all()
    assert [tuple(r) for r in rows] == [("add_pair", "ETHUSDT"), ("retrain", PAIR)]


async def test_backfilling_pair_answers_409_with_progress(served, client, no_commands, own_pairs) -> None:
    await add_symbol(
        served.db,
        own_pairs("SOLUSDT"),
        "SOL",
        "USDT",
        status="backfilling",
        backfill_done=300,
        backfill_total=1200,
        backfill_eta_s=42.0,
    )
    for path in ("/pairs/SOLUSDT/predictions/latest",):
        body = problem(await client.get(path), 409)
        assert (
            body["error"] == "backfilling"
            and body["progress"]["percent"] == 25.0
            and body["progress"]["eta_s"] == 42.0
        )
    body = problem(await client.post("/pairs/SOLUSDT/predict"), 409)
    assert "25.0 % done" in body["message"]
    removed = await client.delete(
        "/pairs/SOLUSDT", params={"purge": "true", "confirm": "SOLUSDT"}, headers=AUTH
    )
    assert removed.status_code == 202 and removed.json()["kind"] == "purge_pair"


async def test_a_retrain_is_a_command_to_follow_and_the_plan_is_the_schedulers(
    served, client, no_commands
) -> None:
    from cryptocast.tune.scheduler import Scheduler

    queued = await client.post(f"/pairs/{PAIR}/retrain", headers=AUTH)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    command = body["command_id"]
    assert queued.headers["location"] == body["url"] == f"/commands/{command}"
    assert (body["status"], body["kind"], body["trigger"]) == ("pending", "retrain", "request")
    # nothing here runs a scheduler, and the answer says so instead of promising a training
    assert (
        not body["scheduler"]["running"]
        and "no training scheduler is running" in body["scheduler"]["message"]
    )
    conflict = problem(await client.post(f"/pairs/{PAIR}/retrain", headers=AUTH), 409)
    assert conflict["command"]["id"] == command and f"command {command}" in conflict["message"]

    one = (await client.get(f"/commands/{command}")).json()
    assert one["status"] == "pending" and one["progress"] is None and one["result"] is None
    listed = (await client.get("/commands", params={"symbol": PAIR.lower(), "status": "pending"})).json()
    assert [c["id"] for c in listed["commands"]] == [command]
    assert (await client.get("/commands", params={"kind": "rollback"})).json()["commands"] == []
    problem(await client.get("/commands", params={"status": "lost"}), 422)
    problem(await client.get("/commands", params={"kind": "format_disk"}), 422)
    problem(await client.get("/commands", params={"limit": 1000}), 422)
    problem(await client.get("/commands/999999"), 404)
    problem(await client.get("/commands/0"), 422)
    problem(await client.get("/commands/abc"), 422)
    problem(await client.post(f"/pairs/{PAIR}/rollback"), 401)
    assert problem(await client.post(f"/pairs/{PAIR}/rollback", headers=AUTH), 409)["error"] == "no_champion"

    detail = (await client.get(f"/pairs/{PAIR}")).json()
    training = detail["training"]
    assert (
        training["current"]["id"] == command and training["next"] is None and detail["next_training"] is None
    )
    # once the scheduler has planned, the API shows its plan: the next slot and what history allows
    monday_noon = 1_741_608_000_000
    await Scheduler(served.db, lambda: monday_noon).plan()
    training = (await client.get(f"/pairs/{PAIR}")).json()["training"]
    assert training["next"] == {"at": "2025-03-11T02:00:00+00:00", "kind": "recalibrate"}
    assert training["needs_days"] == 9.5 and training["note"].startswith("needs 9.5 more days of history")
    assert (await client.get(f"/pairs/{PAIR}")).json()["next_training"] == "2025-03-11T02:00:00+00:00"


def from_address(served, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is this machine): a client
    of its own, as far as the API's per-client limits can tell."""
    return httpx.AsyncClient(
        base_url=served.url, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=address)
    )


async def _commands(served) -> list[tuple]:
    async with served.db.connect() as conn:
        return [tuple(r) for r in (await conn.execute(select(commands.c.kind, commands.c.symbol))).all()]


async def test_a_purge_needs_the_symbol_as_confirmation(served, client, no_commands, own_pairs) -> None:
    await add_symbol(served.db, own_pairs("XRPUSDT"), "XRP", "USDT", status="paused")
    for params in (
        {"purge": "true"},
        {"purge": "true", "confirm": "ETHUSDT"},
        {"purge": "true", "confirm": ""},
    ):
        body = problem(await client.delete("/pairs/XRPUSDT", params=params, headers=AUTH), 400)
        assert body["error"] == "confirmation_required" and "?purge=true&confirm=XRPUSDT" in body["message"]
    # a query string smuggled into the path is part of the symbol, which is then no symbol at all
    for path in ("/pairs/XRPUSDT%3Fpurge%3Dtrue", "/pairs/XRPUSDT%3Fpurge%3Dtrue%26confirm%3DXRPUSDT"):
        problem(await client.delete(path, headers=AUTH), 422)
    problem(await client.delete("/pairs/XRPUSDT%2F..%2FBTCUSDT", headers=AUTH), 404)  # no such route
    assert await _commands(served) == []  # nothing was submitted
    removed = await client.delete("/pairs/XRPUSDT", headers=AUTH)  # removing keeps the data: no confirmation
    assert removed.status_code == 202 and removed.json()["kind"] == "remove_pair"
    purged = await client.delete(
        "/pairs/xrpusdt", params={"purge": "true", "confirm": "XRPUSDT"}, headers=AUTH
    )
    assert purged.status_code == 202 and purged.json()["kind"] == "purge_pair", purged.text
    assert await _commands(served) == [("remove_pair", "XRPUSDT"), ("purge_pair", "XRPUSDT")]


async def test_oversized_bodies_are_refused_before_they_are_read(served, client) -> None:
    huge = b"{" + b" " * HUGE_BODY_BYTES + b"}"
    for path, headers in ((f"/pairs/{PAIR}/predict", {}), ("/pairs", AUTH)):
        body = problem(
            await client.post(path, content=huge, headers=headers | {"Content-Type": "application/json"}), 413
        )
        assert body["error"] == "too_large" and f"{MAX_BODY_BYTES:,} bytes" in body["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"candles": ['
        for _ in range(2 * MAX_BODY_BYTES // 65_536):
            yield b" " * 65_536
        yield b"]}"

    streamed = await client.post(
        f"/pairs/{PAIR}/predict", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert problem(streamed, 413)["error"] == "too_large"
    # the largest valid body, a full window written out with indentation, is well inside the limit
    window = [
        {
            "open_time": 1_700_000_000_000 + i * 60_000,
            "open": 84_123.456789012,
            "high": 84_200.123456789,
            "low": 84_000.987654321,
            "close": 84_111.222333444,
            "volume": 12.345678901,
        }
        for i in range(MAX_WINDOW)
    ]
    full = json.dumps({"candles": window}, indent=4).encode()
    assert len(full) < MAX_BODY_BYTES
    answer = await client.post(
        f"/pairs/{PAIR}/predict", content=full, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 200, answer.text


async def test_a_burst_of_writes_from_one_client_gets_429(served) -> None:
    burst = get_settings().api_write_burst
    async with from_address(served, "127.0.3.1") as flood, from_address(served, "127.0.3.2") as other:
        statuses = []
        while 429 not in statuses and len(statuses) < 2 * burst:
            reply = await flood.delete("/pairs/NOSUCHPAIR")  # without the token: cheap, and still a write
            statuses.append(reply.status_code)
        assert statuses.index(429) >= burst and set(statuses[:burst]) == {401}, statuses
        body = problem(reply, 429)
        assert body["error"] == "rate_limited" and int(reply.headers["retry-after"]) >= 1
        assert (await flood.get(f"/pairs/{PAIR}")).status_code == 200  # reads are not limited
        problem(await other.delete("/pairs/NOSUCHPAIR"), 401)  # the bucket is the client's, not everyone's


async def test_health_is_shared_for_a_second_and_names_no_connection_details(served, client) -> None:
    replies = await asyncio.gather(*(client.get("/health") for _ in range(8)))
    assert {r.status_code for r in replies} == {200}
    # one check answered them all: the same body, made once (each check reads the database anew)
    assert len({r.content for r in replies}) == 1 and replies[0].json()["checked_at"]
    text = replies[0].text
    url = served.db.url
    for detail in filter(
        None,
        (
            url.username,
            url.host,
            url.query.get("host"),
            url.database,
            str(url.port or ""),
            "postgresql",
            "@",
            "://",
        ),
    ):
        assert detail not in text, f"/health shows {detail!r}: {text}"
    assert str(served.replay.port) not in text
    await asyncio.sleep(HEALTH_TTL_S * 1.5)
    assert (await client.get("/health")).json()["checked_at"] > replies[0].json()["checked_at"]


async def test_an_unreachable_database_is_explained_without_where_it_is() -> None:
    db = Database(f"postgresql://leaky_user:pw@127.0.0.1:{free_port()}/leaky_database", pool_size=1)
    app = FastAPI()
    errors.install(app)

    @app.get("/read")
    async def read() -> None:
        await db.check()

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as http:
            reply = await http.get("/read")
    finally:
        await db.dispose()
    body = problem(reply, 503)
    assert body["message"] == errors.DATABASE_DOWN
    assert not re.search(r"leaky|127\.0\.0\.1|@", reply.text), reply.text
