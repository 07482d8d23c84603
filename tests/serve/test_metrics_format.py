"""``GET /metrics`` of the running API passes the Prometheus text-format check (``tests/promlint.py``),
exports every ingestion and training family, and shows what the pair actors and trainings add to
``pair_metrics`` at the next scrape."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cryptocast.serve import metrics
from cryptocast.sql import pairmetrics
from tests import promlint
from tests.serve.conftest import PAIR, Served

pytestmark = pytest.mark.slow
STORED = "cryptocast_ingest_candles_stored_total"
DURATION = "cryptocast_training_last_run_duration_seconds"


async def _scrape(client: httpx.AsyncClient) -> tuple[str, dict[str, float]]:
    reply = await client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    values = {
        s.name: s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
        if s.labels.get("pair") == PAIR
    }
    return reply.text, values


async def test_metrics_pass_the_format_check_and_move_with_stored_counts(
    served: Served, client: httpx.AsyncClient
) -> None:
    await client.get("/pairs")  # at least one request counted and timed
    _, before = await _scrape(client)
    await pairmetrics.record(
        served.db,
        served.symbol_id,
        {"ingest_candles_stored": 5},
        {"training_last_run_duration_seconds": 12.5},
    )
    text, after = await _scrape(client)
    assert promlint.problems(text) == []
    assert after[STORED] - before.get(STORED, 0.0) == 5 and after[DURATION] == 12.5
    types = {name: kind for name, (kind, _) in promlint.declared(text).items()}
    expected = {f"cryptocast_{s.name}_total": "counter" for s in pairmetrics.COUNTERS}
    expected |= {f"cryptocast_{s.name}": "gauge" for s in pairmetrics.GAUGES}
    expected |= {f"{name}_total": "counter" for name, _ in metrics.LIVE_COUNTERS.values()}
    expected |= {
        metrics.STORE_LATENCY: "histogram",
        "cryptocast_api_latency_seconds": "histogram",
        "cryptocast_api_requests_total": "counter",
        "cryptocast_ingest_lag_seconds": "gauge",
        "cryptocast_pair_actor_restarts_total": "counter",
    }
    assert {name: types.get(name) for name in expected} == expected
    assert after["cryptocast_pair_model_alarm"] == 0.0  # the pair's replica answered, with no alarm
