"""``?format=csv|parquet`` on the candles, top-of-book and predictions routes: the API's own app and
services on a real PostgreSQL stream files equal to the stored rows, refuse bad formats, spans and
pairs with the API's JSON error body, and answer JSON pages as before without ``format``.

The app runs in the test's process (no Ray): the export path touches only the database, and the
whole Serve deployment is exercised by the rest of this folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import URL

from cryptocast.serve.api import deps
from cryptocast.serve.api.app import build_api
from cryptocast.serve.api.services import ApiServices
from cryptocast.serve.config import ServeOptions
from cryptocast.sql import export
from cryptocast.sql.database import Database
from tests.sql.export_data import CANDLE_COLUMNS, PAIR, Seeded, iso, seed, stored


@pytest.fixture
async def seeded(db: Database) -> Seeded:
    return await seed(db)


@pytest.fixture
async def api(db_url: URL, seeded: Seeded, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API app with its real services on the test's database (the URL passed as a file, as
    the deployment passes it)."""
    url_file = tmp_path / "database-url"
    url_file.write_text(db_url.set(drivername="postgresql").render_as_string(hide_password=False))
    options = ServeOptions(
        str(tmp_path), "http://127.0.0.1:1", "ws://127.0.0.1:1", database_url_file=str(url_file)
    )
    services = ApiServices(options, live=None)  # the live predictor is not on the export path
    app = build_api()
    app.dependency_overrides[deps.services] = lambda: services
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            yield client
    finally:
        if services.hot.news is not None:
            services.hot.news.cancel()
        await services.db.dispose()


def _problem(reply: httpx.Response, status: int, says: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) >= {"error", "message"} and says in body["message"], body


async def test_a_day_of_candles_as_parquet(api, db, seeded) -> None:
    span = {"start": iso(seeded.start), "end": iso(seeded.end)}
    reply = await api.get(f"/pairs/{PAIR.lower()}/candles", params={"format": "parquet", **span})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/vnd.apache.parquet"
    name = export.filename(PAIR, export.CANDLES, seeded.start, seeded.end, "parquet")
    assert reply.headers["content-disposition"] == f'attachment; filename="{name}"'
    table = pq.read_table(io.BytesIO(reply.content))
    assert table.to_pylist() == await stored(db, "price_history", CANDLE_COLUMNS, "open_time", seeded)
    page = (await api.get(f"/pairs/{PAIR}/candles", params={"limit": 10, **span})).json()
    assert len(page["candles"]) == 10 and page["next_start"]  # without format: JSON pages as before


async def test_top_of_book_and_predictions_as_csv(api, db, seeded) -> None:
    span = {"start": iso(seeded.start), "end": iso(seeded.end), "format": "csv"}
    book = await api.get(f"/pairs/{PAIR}/top-of-book", params=span)
    assert book.status_code == 200 and book.headers["content-type"].startswith("text/csv"), book.text
    rows = list(csv.DictReader(io.StringIO(book.text)))
    want = await stored(db, "top_of_book", "minute, bid_price", "minute", seeded)
    assert [(r["minute"], float(r["bid_price"])) for r in rows] == [
        (iso(w["minute"]), w["bid_price"]) for w in want
    ]
    page = (await api.get(f"/pairs/{PAIR}/top-of-book", params={"start": span["start"], "limit": 5})).json()
    assert [row[0] for row in page["top_of_book"]] == [iso(w["minute"]) for w in want[:5]]  # JSON as before
    assert page["columns"][0] == "minute" and page["next_start"] and "freshness" in page
    predictions = await api.get(f"/pairs/{PAIR}/predictions", params=span)
    assert predictions.status_code == 200, predictions.text
    scored = [r for r in csv.DictReader(io.StringIO(predictions.text)) if r["actual"]]
    assert scored and all(r["served"] == "true" for r in scored)
    for r in scored[:20]:
        assert float(r["actual"]) == seeded.closes[datetime.fromisoformat(r["target_time"])]


async def test_bad_format_span_and_pair_are_json_errors(api, seeded) -> None:
    span = {"start": iso(seeded.start), "end": iso(seeded.end)}
    _problem(await api.get(f"/pairs/{PAIR}/candles", params={**span, "format": "xlsx"}), 422, "format")
    wide = {"start": "2025-01-01", "end": "2025-03-01", "format": "csv"}
    _problem(await api.get(f"/pairs/{PAIR}/predictions", params=wide), 422, "at most 31 days")
    backwards = {"start": span["end"], "end": span["start"], "format": "parquet"}
    _problem(await api.get(f"/pairs/{PAIR}/top-of-book", params=backwards), 422, "is not before")
    _problem(
        await api.get("/pairs/BTC-USD/candles", params={**span, "format": "csv"}), 422, "is not a symbol"
    )
    _problem(await api.get("/pairs/ETHUSDT/candles", params={**span, "format": "csv"}), 404, "not tracked")


async def test_the_file_formats_are_documented(api) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    for path in ("/pairs/{symbol}/candles", "/pairs/{symbol}/top-of-book", "/pairs/{symbol}/predictions"):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= set(content), content
        assert "$ref" in content["application/json"]["schema"]  # the JSON page keeps its model
