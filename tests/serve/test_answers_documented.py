"""Real answers of the served API validate against the models its own ``/openapi.json`` names.

The routes build their JSON themselves and cached reads are sent as bytes before FastAPI
(``hotpath.py``), so nothing at run time holds an answer to its documented model: this test does,
for every route's success and for errors, the second (hot) answer of a cached read included. The
model is looked up from the served document (status code → ``$ref``), so a route documented with the
wrong model fails here as much as an answer with an undocumented field does (answers forbid them).
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from cryptocast.serve.api import schemas
from cryptocast.sql.queries import add_symbol
from tests.serve.conftest import PAIR, TOKEN

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def documented(doc: dict, method: str, path: str, status: int) -> type[BaseModel]:
    """The model the document names for ``status`` of ``method path``."""
    response = doc["paths"][path][method.lower()]["responses"][str(status)]
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return getattr(schemas, ref.rsplit("/", 1)[-1])


async def test_every_answer_validates_against_its_documented_model(
    served, client: httpx.AsyncClient, settled, no_commands, own_pairs
) -> None:
    doc = (await client.get("/openapi.json")).json()
    await add_symbol(
        served.db, own_pairs("SOLUSDT"), "SOL", "USDT", status="backfilling", backfill_total=1200
    )
    await add_symbol(served.db, own_pairs("XRPUSDT"), "XRP", "USDT", status="paused")
    window = {"start": (settled.replace(minute=0)).isoformat(), "limit": 50}
    calls: list[tuple[str, str, str, dict, int]] = [
        ("GET", "/health", "/health", {}, 200),
        ("GET", "/pairs", "/pairs", {}, 200),
        ("GET", f"/pairs/{PAIR}", "/pairs/{symbol}", {}, 200),
        ("GET", "/pairs/SOLUSDT", "/pairs/{symbol}", {}, 200),
        ("GET", f"/pairs/{PAIR}/candles", "/pairs/{symbol}/candles", {"params": window}, 200),
        ("GET", f"/pairs/{PAIR}/candles", "/pairs/{symbol}/candles", {"params": window}, 200),  # hot
        ("GET", f"/pairs/{PAIR}/top-of-book", "/pairs/{symbol}/top-of-book", {}, 200),
        (
            "GET",
            f"/pairs/{PAIR}/predictions",
            "/pairs/{symbol}/predictions",
            {"params": {"shadow": "true"}},
            200,
        ),
        ("GET", f"/pairs/{PAIR}/predictions/latest", "/pairs/{symbol}/predictions/latest", {}, 200),
        ("GET", f"/pairs/{PAIR}/predictions/latest", "/pairs/{symbol}/predictions/latest", {}, 200),  # hot
        ("GET", f"/pairs/{PAIR}/scores", "/pairs/{symbol}/scores", {"params": {"window_minutes": 600}}, 200),
        ("POST", f"/pairs/{PAIR}/predict", "/pairs/{symbol}/predict", {}, 200),
        ("GET", f"/models/{PAIR}", "/models/{symbol}", {}, 200),
        ("POST", f"/pairs/{PAIR}/retrain", "/pairs/{symbol}/retrain", {"headers": AUTH}, 202),
        ("POST", f"/pairs/{PAIR}/retrain", "/pairs/{symbol}/retrain", {"headers": AUTH}, 409),
        ("GET", "/commands", "/commands", {}, 200),
        ("POST", "/pairs", "/pairs", {"json": {"symbol": "ethusdt"}, "headers": AUTH}, 202),
        ("POST", "/pairs", "/pairs", {"json": {"symbol": "ETHUSDT"}, "headers": AUTH}, 409),
        ("DELETE", "/pairs/XRPUSDT", "/pairs/{symbol}", {"headers": AUTH}, 202),
        ("DELETE", "/pairs/XRPUSDT", "/pairs/{symbol}", {"params": {"purge": "true"}, "headers": AUTH}, 400),
        ("POST", f"/pairs/{PAIR}/rollback", "/pairs/{symbol}/rollback", {}, 401),
        ("GET", "/pairs/SOLUSDT/predictions/latest", "/pairs/{symbol}/predictions/latest", {}, 409),
        ("GET", "/pairs/DOGEUSDT", "/pairs/{symbol}", {}, 404),
        ("GET", f"/pairs/{PAIR}/candles", "/pairs/{symbol}/candles", {"params": {"limit": 0}}, 422),
    ]
    for method, url, path, request, status in calls:
        reply = await client.request(method, url, **request)
        assert reply.status_code == status, (method, url, reply.status_code, reply.text[:500])
        documented(doc, method, path, status).model_validate(reply.json())
    queued = (await client.get("/commands")).json()["commands"]
    assert {c["kind"] for c in queued} == {"retrain", "add_pair", "remove_pair"}
    for command in queued:
        reply = await client.get(command["url"])
        documented(doc, "GET", "/commands/{command_id}", 200).model_validate(reply.json())


async def test_the_served_documents_examples_are_answers_too(client: httpx.AsyncClient) -> None:
    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    examples = [(name, e) for name, schema in components.items() for e in schema.get("examples", [])]
    assert len(examples) >= 15, examples
    for name, example in examples:
        getattr(schemas, name).model_validate(example)
