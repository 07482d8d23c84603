"""Prometheus text for ``GET /metrics``: request counts and latency, pipeline and pair gauges."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

registry = CollectorRegistry()
requests = Counter("cryptocast_api_requests", "API requests", ["route", "status"], registry=registry)
latency = Histogram(
    "cryptocast_api_latency_seconds", "API latency", ["route"], buckets=LATENCY_BUCKETS, registry=registry
)
last_candle_age = Gauge(
    "cryptocast_pair_last_candle_age_seconds",
    "Exchange time since the last candle closed",
    ["pair"],
    registry=registry,
)
backfill_done = Gauge(
    "cryptocast_pair_backfill_ratio", "Backfill progress (0-1)", ["pair"], registry=registry
)
model_alarm = Gauge(
    "cryptocast_pair_model_alarm", "1 when a model swap was refused", ["pair"], registry=registry
)
live = Gauge("cryptocast_live_predictor", "Live predictor counters", ["counter"], registry=registry)
news = Counter(
    "cryptocast_api_news",
    "Notifications that ended a pair's cached reads (candle landed, forecasts stored)",
    ["pair"],
    registry=registry,
)
store_p99 = Gauge(
    "cryptocast_prediction_store_p99_seconds", "Notification to stored rows, p99", registry=registry
)


def render() -> bytes:
    return generate_latest(registry)


_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def observe(route: str, status: int, seconds: float) -> None:
    """Count and time one request; the labelled series are looked up once per (route, status)."""
    key = (route, str(status))
    series = _children.get(key)
    if series is None:
        series = _children[key] = (requests.labels(*key), latency.labels(route))
    series[0].inc()
    series[1].observe(seconds)


class RequestMetrics:
    """ASGI middleware: counts and times requests by route template (never by raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            observe(
                getattr(scope.get("route"), "path", "unmatched"),
                status["code"],
                time.perf_counter() - started,
            )
