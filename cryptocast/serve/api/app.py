"""The API's app: the middleware and error handlers every answer goes through, and the resources.

``new_api`` is the app without routes (tests mount routes of their own on it); ``build_api`` adds
every resource's router, and is what the deployment serves.
"""

from __future__ import annotations

from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from cryptocast.serve import errors, metrics
from cryptocast.serve.api import commands, health, market, models, pairs, predictions
from cryptocast.serve.bodylimit import BodyLimit
from cryptocast.serve.encoded import GZIP_LEVEL, GZIP_MIN_BYTES
from cryptocast.serve.hotpath import HotApi
from cryptocast.settings import get_settings

RESOURCES = (health, pairs, market, predictions, models, commands)


def new_api() -> HotApi:
    """The API's app: error handlers, gzip, request metrics, CORS when configured; no routes yet."""
    app = HotApi(
        title="cryptocast",
        version="1",
        description="Per-pair crypto price forecasts (1, 5, 15, 30 min) with 80/95 % intervals.",
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
