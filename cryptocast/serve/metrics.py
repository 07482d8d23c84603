"""Prometheus text for ``GET /metrics``: the API's own series, and the system's read at each scrape.

Counts are counters (``_total``), levels are gauges and latencies are histograms, so that Prometheus
computes rates and quantiles over any window (nothing here exports a quantile of its own).

The API replica measures its requests in-process (``registry``). Everything else happens in other
processes and reaches the scrape as numbers: the pair actors and the training scheduler add their
counts to ``pair_metrics`` (``cryptocast.sql.pairmetrics``, totals that survive restarts), the live
predictor reports its counts and store-latency buckets, and lag and backfill come from the pair
rows. :class:`ScrapeCollector` turns one :class:`Scrape` of those into metric families; a family is
exported, with its HELP and TYPE, even while it has no samples, so its name is always known.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptocast.sql import pairmetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "cryptocast_"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STORE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CANDLE_S = 60.0

registry = CollectorRegistry()
requests = Counter("cryptocast_api_requests", "API requests", ["route", "status"], registry=registry)
latency = Histogram(
    "cryptocast_api_latency_seconds", "API latency", ["route"], buckets=LATENCY_BUCKETS, registry=registry
)
news = Counter(
    "cryptocast_api_news",
    "Notifications that ended a pair's cached reads (candle landed, forecasts stored)",
    ["pair"],
    registry=registry,
)

# the live predictor's counts -> (metric name without _total, help)
LIVE_COUNTERS = {
    "notifications": ("cryptocast_live_notifications", "Candle notifications the live predictor received"),
    "stored": ("cryptocast_live_predictions_stored", "Prediction rows stored"),
    "late": ("cryptocast_live_predictions_late", "Prediction rows stored late (caught up after a gap)"),
    "failed": ("cryptocast_live_prediction_failures", "Minutes whose predictions could not be stored"),
    "retrains": ("cryptocast_live_retrains_requested", "Retrains requested for live drift"),
    "applied": ("cryptocast_live_config_applies", "Serve configs the live predictor applied"),
}
STORE_LATENCY = "cryptocast_prediction_store_latency_seconds"


class LatencyBuckets:
    """A histogram kept where a latency is measured (another replica) and sent as plain numbers."""

    def __init__(self, bounds: tuple[float, ...] = STORE_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative; above the last bound: only in count
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        i = bisect_left(self.bounds, seconds)
        if i < len(self.counts):
            self.counts[i] += 1

    def snapshot(self) -> dict:
        cumulative, running = [], 0
        for n in self.counts:
            running += n
            cumulative.append(running)
        return {"bounds": list(self.bounds), "cumulative": cumulative, "count": self.count, "sum": self.sum}


@dataclass(frozen=True)
class Scrape:
    """What one scrape read from outside the API replica."""

    exchange_now_ms: float | None  # None while the exchange cannot be asked: no lag is exported
    pairs: list[dict]  # symbols rows
    stored: list[dict] = field(default_factory=list)  # pair_metrics rows: symbol, name, value
    live: dict | None = None  # the live predictor's stats; None while it does not answer
    alarms: dict[str, bool] = field(default_factory=dict)  # pair -> its replica refused a model swap


class ScrapeCollector:
    """The families of one :class:`Scrape` (a collector that ``generate_latest`` renders)."""

    def __init__(self, scrape: Scrape) -> None:
        self.scrape = scrape

    def collect(self) -> Iterator[Metric]:
        yield from self._pairs()
        yield from self._stored()
        yield from self._live()

    def _pairs(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            PREFIX + "ingest_lag_seconds",
            "Exchange time since the pair's newest stored candle closed",
            labels=["pair"],
        )
        backfill = GaugeMetricFamily(
            PREFIX + "pair_backfill_ratio", "Backfill progress (0-1)", labels=["pair"]
        )
        alarm = GaugeMetricFamily(
            PREFIX + "pair_model_alarm", "1 when the pair's replica refused a model swap", labels=["pair"]
        )
        restarts = CounterMetricFamily(
            PREFIX + "pair_actor_restarts", "Times the supervisor restarted the pair's actor", labels=["pair"]
        )
        now_ms = self.scrape.exchange_now_ms
        for row in self.scrape.pairs:
            symbol, newest = row["symbol"], row["last_candle_time"]
            if newest is not None and now_ms is not None:
                lag.add_metric([symbol], now_ms / 1000 - newest.timestamp() - CANDLE_S)
            total = row["backfill_total"]
            backfill.add_metric([symbol], row["backfill_done"] / total if total else 0.0)
            restarts.add_metric([symbol], row["restarts"])
        for symbol, raised in sorted(self.scrape.alarms.items()):
            alarm.add_metric([symbol], 1.0 if raised else 0.0)
        yield from (lag, backfill, alarm, restarts)

    def _stored(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for series in pairmetrics.COUNTERS:
            families[series.name] = CounterMetricFamily(PREFIX + series.name, series.help, labels=["pair"])
        for series in pairmetrics.GAUGES:
            families[series.name] = GaugeMetricFamily(PREFIX + series.name, series.help, labels=["pair"])
        for row in self.scrape.stored:
            family = families.get(row["name"])
            if family is not None:  # a name a newer writer knows and this replica does not yet
                family.add_metric([row["symbol"]], row["value"])
        yield from families.values()

    def _live(self) -> Iterator[Metric]:
        live = self.scrape.live or {}
        counts = live.get("counts", {})
        for key, (name, help_text) in LIVE_COUNTERS.items():
            family = CounterMetricFamily(name, help_text)
            if key in counts:
                family.add_metric([], counts[key])
            yield family
        buckets = live.get("store_latency_buckets")
        histogram = HistogramMetricFamily(STORE_LATENCY, "Candle notification to stored prediction rows")
        if buckets is not None:
            histogram.add_metric(
                [],
                [(repr(float(b)), n) for b, n in zip(buckets["bounds"], buckets["cumulative"], strict=True)]
                + [("+Inf", buckets["count"])],
                buckets["sum"],
            )
        yield histogram


def render(scrape: Scrape) -> bytes:
    return generate_latest(registry) + generate_latest(ScrapeCollector(scrape))


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
