"""The OpenAPI document describes the API as it answers: a model for every answer, the one error
body on every error, the bearer scheme on exactly the routes that check the token, tags.

The document is the app's own (``build_api``, as deployed); the errors are real answers of that app
(validation, token, write rate, body size), produced before any route reaches the database, so no
Ray or PostgreSQL is needed. That the data answers match their models is tested against the served
API in ``test_answers_documented.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from cryptocast.serve.api import deps, schemas
from cryptocast.serve.api.app import RESOURCES, build_api
from cryptocast.serve.auth import require_token
from cryptocast.serve.bodylimit import MAX_BODY_BYTES
from cryptocast.serve.ratelimit import write_rate
from cryptocast.settings import get_settings

TOKEN = "document-tests-token-0123456789ab"
ERROR_REF = "#/components/schemas/ErrorBody"
TAGS = {"pairs", "market data", "predictions", "models", "commands", "health"}
TEXT_ROUTES = {("GET", "/metrics")}  # Prometheus text, no JSON model


def _operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _json_ref(response: dict) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The deployed app with a token and a write burst of 2, without its services: every request
    here is refused before a route would use them."""
    for key in ("CRYPTOCAST_MODE", "CRYPTOCAST_CORS_ORIGINS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CRYPTOCAST_API_TOKEN", TOKEN)
    monkeypatch.setenv("CRYPTOCAST_API_WRITE_BURST", "2")
    monkeypatch.setenv("CRYPTOCAST_API_WRITES_PER_MINUTE", "1")
    get_settings.cache_clear()
    write_rate.cache_clear()
    app = build_api()
    app.dependency_overrides[deps.services] = lambda: None
    yield TestClient(app)
    get_settings.cache_clear()
    write_rate.cache_clear()


def test_every_answer_has_a_model_every_error_the_error_body(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    schemas_named = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas_named and "ValidationError" not in schemas_named
    missing = []
    for method, path, operation in _operations(doc):
        if (method, path) in TEXT_ROUTES:
            continue
        for status, response in operation["responses"].items():
            ref = _json_ref(response)
            if status.startswith("2"):
                name = (ref or "").rsplit("/", 1)[-1]
                if name not in schemas_named or not hasattr(schemas, name):
                    missing.append(f"{method} {path} {status}: {ref}")
            elif status.startswith(("4", "5")) and ref != ERROR_REF and path != "/health":
                missing.append(f"{method} {path} {status}: {ref}")
        if not any(s.startswith("2") for s in operation["responses"]):
            missing.append(f"{method} {path}: no 2xx answer")
    assert not missing, "\n".join(missing)
    assert schemas_named["ErrorBody"]["required"] == ["error", "message"]
    assert all(schemas_named[name].get("examples") for name in ("ErrorBody", "Candles", "Pair", "Health"))


def test_every_example_is_an_answer_its_model_accepts(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    checked = 0
    for name, schema in doc["components"]["schemas"].items():
        for example in schema.get("examples", []):
            getattr(schemas, name).model_validate(example)
            checked += 1
    assert checked >= 15, checked


def test_each_operation_has_a_resource_tag_and_its_own_id(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    operations = list(_operations(doc))
    assert {t["name"] for t in doc["tags"]} == TAGS
    untagged = [
        f"{m} {p}" for m, p, op in operations if len(op.get("tags", [])) != 1 or op["tags"][0] not in TAGS
    ]
    assert not untagged, untagged
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), ids


def test_the_bearer_scheme_is_on_exactly_the_routes_that_check_the_token(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "description": deps.BEARER.model.description}
    }
    guarded = {
        (method, route.path)
        for resource in RESOURCES
        for route in resource.router.routes
        if isinstance(route, APIRoute) and any(d.call is require_token for d in route.dependant.dependencies)
        for method in route.methods
    }
    secured = {(m, p) for m, p, op in _operations(doc) if op.get("security") == [{"bearer": []}]}
    assert secured == guarded
    assert {m for m, _ in guarded} == {"POST", "DELETE"} and (
        "POST",
        "/pairs/{symbol}/predict",
    ) not in guarded


def _documented_errors(doc: dict, method: str, path: str) -> set[int]:
    return {int(s) for s in doc["paths"][path][method.lower()]["responses"] if s[0] in "45"}


def test_real_errors_have_the_documented_shape_and_status(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        ("GET", "/pairs/BTCUSDT/candles", "/pairs/{symbol}/candles", {"params": {"limit": 0}}, 422),
        ("GET", "/commands/0", "/commands/{command_id}", {}, 422),
        (
            "POST",
            "/pairs/BTCUSDT/predict",
            "/pairs/{symbol}/predict",
            {"json": {"candles": [{"open": -1}]}},
            422,
        ),
        ("POST", "/pairs", "/pairs", {"json": {"symbol": "BTCUSDT"}}, 401),
        (
            "POST",
            "/pairs/BTCUSDT/retrain",
            "/pairs/{symbol}/retrain",
            {"headers": {"Authorization": "Basic x"}},
            401,
        ),
        ("POST", "/pairs", "/pairs", {"content": b" " * (MAX_BODY_BYTES + 1), "headers": auth}, 413),
        ("DELETE", "/pairs/BTCUSDT", "/pairs/{symbol}", {"headers": auth}, 429),  # the burst of 2 is spent
    ]
    for method, url, path, request, status in cases:
        reply = api.request(method, url, **request)
        assert reply.status_code == status, (method, url, reply.status_code, reply.text)
        body = schemas.ErrorBody.model_validate(reply.json())
        assert body.message.strip() and body.error, body
        assert status in _documented_errors(doc, method, path), (method, path, status)
    assert reply.headers["Retry-After"].isdigit()
