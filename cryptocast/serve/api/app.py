"""The API's app: the middleware and error handlers every answer goes through, and the resources.

``new_api`` is the app without routes (tests mount routes of their own on it); ``build_api`` adds
every resource's router, and is what the deployment serves.
"""

from __future__ import annotations

from typing import Any

from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.routing import APIRoute

from cryptocast.serve import errors, metrics
from cryptocast.serve.api import commands, health, market, models, pairs, predictions, schemas, status
from cryptocast.serve.bodylimit import BodyLimit
from cryptocast.serve.encoded import GZIP_LEVEL, GZIP_MIN_BYTES
from cryptocast.serve.hotpath import HotApi
from cryptocast.settings import get_settings

RESOURCES = (health, pairs, market, predictions, models, commands, status)


TAGS = [
    {"name": "pairs", "description": "Which pairs are tracked; adding and removing one (a command)"},
    {"name": "market data", "description": "Stored 1-minute candles and top of book, paged by time"},
    {"name": "predictions", "description": "Stored and on-demand forecasts and their live scores"},
    {"name": "models", "description": "A pair's model versions; retrain and rollback (commands)"},
    {"name": "commands", "description": "What was asked of ingestion and training, and how it went"},
    {"name": "health", "description": "Readiness for probes and Prometheus metrics"},
]


def operation_id(route: APIRoute) -> str:
    """A route's ``operationId`` is its function's name (``candles``, ``add_pair``), which a
    generated client takes as its function's name."""
    return route.name


class DocumentedApi(HotApi):
    """The app whose OpenAPI document keeps its examples whole: FastAPI makes the document without
    null values, examples included, so it is mended once each time FastAPI makes it anew."""

    def openapi(self) -> dict[str, Any]:
        made_now = not self.openapi_schema
        document = super().openapi()
        if made_now:
            schemas.restore_examples(document)
        return document


def new_api() -> HotApi:
    """The API's app: error handlers, gzip, request metrics, CORS when configured; no routes yet."""
    app = DocumentedApi(
        title="cryptocast",
        version="1",
        description="Per-pair crypto price forecasts (1, 5, 15, 30 min) with 80/95 % intervals.",
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
    )
    errors.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES, compresslevel=GZIP_LEVEL)
    app.add_middleware(metrics.RequestMetrics)
    if get_settings().cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=get_settings().cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def build_api() -> HotApi:
    """The whole API: ``new_api`` with every resource's routes."""
    app = new_api()
    for resource in RESOURCES:
        app.include_router(resource.router)
    return app
