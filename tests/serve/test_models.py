"""Model swaps under load, a corrupted artifact, and the live loop from candle to stored prediction."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from cryptocast.sql.schema import PREDICTIONS_CHANNEL, predictions
from cryptocast.sql.writer import CandleWriter
from cryptocast.tune import registry
from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.training import persistence_predictor
from tests.helpers import eventually
from tests.serve.conftest import PAIR, candles_after_newest

pytestmark = pytest.mark.slow


class CorruptingStore(registry.ModelStore):
    """Writes damaged bytes under the checksum of the real ones: what a bad disk or a swapped file does."""

    def put(self, symbol: str, version: int, kind: str, data: bytes) -> tuple[str, str]:
        uri, sha = super().put(symbol, version, kind, data)
        self.fs.pipe_file(self.fs._strip_protocol(uri), data[: len(data) // 2])
        return uri, sha


async def _new_baseline(served, store: registry.ModelStore) -> registry.ModelRecord:
    from cryptocast.tune.candles import recent_candles

    candles = await recent_candles(served.db, served.symbol_id, 2 * DAY_MS)
    baseline, _ = persistence_predictor(candles, 2 * DAY_MS)
    return await registry.register(
        served.db, store, served.symbol_id, baseline, registry.CHAMPION, "test swap"
    )


async def _serving_version(client) -> tuple[int, dict | None]:
    detail = (await client.get(f"/pairs/{PAIR}")).json()
    return detail["serving"]["models"]["persistence"]["version"], detail["alarm"]


async def test_swap_under_requests_loses_none_and_corrupt_artifact_keeps_the_old(served, client) -> None:
    before, _ = await _serving_version(client)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            statuses.append((await client.post(f"/pairs/{PAIR}/predict")).status_code)

    workers = [asyncio.create_task(hammer()) for _ in range(4)]
    new = await _new_baseline(served, served.store)
    await eventually(
        lambda: _is_version(client, new.version), f"version {new.version} served", timeout_s=60, every_s=0.25
    )
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*workers)
    assert new.version > before and len(statuses) > 20 and set(statuses) == {200}

    bad = await _new_baseline(served, CorruptingStore(served.store.root))
    alarm = await eventually(
        lambda: _alarm(client), "an alarm for the corrupt artifact", timeout_s=60, every_s=0.25
    )
    assert "CorruptArtifact" in alarm["message"] and alarm["wanted"]["persistence"] == bad.id
    answer = (await client.post(f"/pairs/{PAIR}/predict")).json()
    assert answer["models"]["persistence"]["version"] == new.version  # the previous model still serves
    fixed = await _new_baseline(served, served.store)
    await eventually(
        lambda: _is_version(client, fixed.version),
        f"version {fixed.version} served",
        timeout_s=60,
        every_s=0.25,
    )
    assert (await _serving_version(client))[1] is None


async def _is_version(client, version: int) -> bool:
    return (await _serving_version(client))[0] == version


async def _alarm(client):
    return (await _serving_version(client))[1]


async def test_new_candle_gets_its_prediction_stored_then_scored(served, client, settled) -> None:
    future = await candles_after_newest(served, 2)  # after the newest candle, whose forecast is stored
    writer = CandleWriter(served.db)
    first = future[:1]
    await writer.write(served.symbol_id, first)
    origin = first[0].open_time
    latest = await eventually(
        lambda: _latest_at(client, origin),
        f"the latest forecast at {_iso(origin)}",
        timeout_s=30,
        every_s=0.25,
    )
    assert [p["horizon"] for p in latest["predictions"]] == [1, 5, 15, 30]
    assert latest["predictions"][0]["late"] is False and latest["predictions"][0]["actual"] is None
    # Repeats while the answer is cached are sent before FastAPI (hotpath.py): the same answer, counted.
    before = _latest_count((await client.get("/metrics")).text)
    repeats = [
        await client.get(f"/pairs/{PAIR}/predictions/latest", headers={"Accept-Encoding": "identity"})
        for _ in range(3)
    ]
    assert {(r.status_code, r.headers["etag"], r.headers["content-type"]) for r in repeats} == {
        (200, repeats[0].headers["etag"], "application/json")
    }
    assert _latest_count((await client.get("/metrics")).text) - before == 3
    await writer.write(served.symbol_id, future[1:2])
    scored = (
        await client.get(f"/pairs/{PAIR}/predictions", params={"start": future[0].open_time / 1000})
    ).json()
    h1 = next(
        p for p in scored["predictions"] if p["horizon"] == 1 and p["origin_time"] == latest["origin_time"]
    )
    assert h1["actual"] == future[1].close and h1["error"] == pytest.approx(h1["actual"] - h1["predicted"])
    async with served.db.connect() as conn:
        made = (
            await conn.execute(
                select(predictions.c.served).where(predictions.c.symbol_id == served.symbol_id)
            )
        ).all()
    assert made and all(r.served for r in made)


# Copies a minute's forecasts one minute on (or removes the copy) and announces it, as the predictor does.
_COPY_AHEAD = """
WITH copied AS (
    INSERT INTO predictions (symbol_id, model_id, origin_time, horizon, predicted,
                             lower_80, upper_80, lower_95, upper_95, served, late)
    SELECT symbol_id, model_id, origin_time + interval '1 minute', horizon, predicted,
           lower_80, upper_80, lower_95, upper_95, served, late
    FROM predictions WHERE symbol_id = $1 AND origin_time = $2 RETURNING 1
)
SELECT pg_notify($3, $4) FROM (SELECT count(*) FROM copied) AS n
"""
_REMOVE_COPY = """
WITH removed AS (DELETE FROM predictions WHERE symbol_id = $1 AND origin_time = $2::timestamptz + interval '1 minute' RETURNING 1)
SELECT pg_notify($3, $4) FROM (SELECT count(*) FROM removed) AS n
"""


async def test_stored_forecasts_end_the_cached_latest_at_once(served, client, settled) -> None:
    """The latest forecast is cached until news of the pair; once the router has heard it, the very
    next read has the new forecast (without the news it would keep the old one for up to 0.5 s)."""
    path = f"/pairs/{PAIR}/predictions/latest"
    old = (await eventually(lambda: _ok(client, path), "a latest forecast", timeout_s=30, every_s=0.25))[
        "origin_time"
    ]
    origin = datetime.fromisoformat(old)
    news = json.dumps({"symbol": PAIR, "origin_time": int(origin.timestamp() * 1000) + 60_000})
    try:
        for _ in range(3):  # read, so the answer is cached now; then store and announce a newer one
            assert (await client.get(path)).json()["origin_time"] == old
            heard = _news_count((await client.get("/metrics")).text)
            async with served.db.raw() as conn:
                await conn.execute(_COPY_AHEAD, served.symbol_id, origin, PREDICTIONS_CHANNEL, news)
            await eventually(
                lambda h=heard: _news_since(client, h), "the news heard", timeout_s=10, every_s=0.01
            )
            assert (await client.get(path)).json()["origin_time"] == (
                origin + timedelta(minutes=1)
            ).isoformat()
            async with served.db.raw() as conn:
                await conn.execute(_REMOVE_COPY, served.symbol_id, origin, PREDICTIONS_CHANNEL, news)
            await eventually(
                lambda h=heard + 1: _news_since(client, h),
                "the removal's news heard",
                timeout_s=10,
                every_s=0.01,
            )
    finally:
        async with served.db.raw() as conn:
            await conn.execute(_REMOVE_COPY, served.symbol_id, origin, PREDICTIONS_CHANNEL, news)


async def _ok(client, path: str) -> dict | None:
    reply = await client.get(path)
    return reply.json() if reply.status_code == 200 else None


def _news_count(metrics_text: str) -> float:
    line = f'cryptocast_api_news_total{{pair="{PAIR}"}} '
    return next((float(x.removeprefix(line)) for x in metrics_text.splitlines() if x.startswith(line)), 0.0)


async def _news_since(client, count: float) -> bool:
    return _news_count((await client.get("/metrics")).text) > count


def _latest_count(metrics_text: str) -> float:
    line = 'cryptocast_api_requests_total{route="/pairs/{symbol}/predictions/latest",status="200"} '
    return next(float(x.removeprefix(line)) for x in metrics_text.splitlines() if x.startswith(line))


async def _latest_at(client, origin_ms: int):
    reply = await client.get(f"/pairs/{PAIR}/predictions/latest")
    if reply.status_code != 200:
        return None
    body = reply.json()
    return body if body["predictions"] and body["origin_time"].startswith(_iso(origin_ms)) else None


def _iso(ms: int) -> str:
    from cryptocast.records import ms_to_dt

    return ms_to_dt(ms).isoformat()[:19]
