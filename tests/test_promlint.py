"""The metrics checker the ``/metrics`` tests rely on finds each kind of problem promtool would lint,
and passes an exposition written the way prometheus_client writes one."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests import promlint


def _client_exposition() -> str:
    registry = CollectorRegistry()
    Counter("demo_requests", "Requests", ["route"], registry=registry).labels("/a").inc(3)
    Gauge("demo_queue_depth", "Queued jobs", registry=registry).set(2)
    Histogram("demo_latency_seconds", "Latency", registry=registry).observe(0.2)
    return generate_latest(registry).decode()


def test_an_exposition_written_by_the_client_library_passes() -> None:
    assert promlint.problems(_client_exposition()) == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("# HELP demo_requests Requests\n# TYPE demo_requests counter\ndemo_requests 1\n", '"_total" suffix'),
        ("# HELP demo_jobs_total Jobs\n# TYPE demo_jobs_total gauge\ndemo_jobs_total 1\n", "non-counter"),
        ("# TYPE demo_depth gauge\ndemo_depth 1\n", "no help text"),
        ("# HELP demo_lag_minutes Lag\n# TYPE demo_lag_minutes gauge\ndemo_lag_minutes 1\n", "base unit"),
        ("# HELP demo_lag_ms Lag\n# TYPE demo_lag_ms gauge\ndemo_lag_ms 1\n", "full unit name"),
        ("# HELP demo_lag Lag\n# TYPE demo_lag gauge\ndemo_lag 1\n", "_seconds"),
        ("# HELP demo_gauge_depth D\n# TYPE demo_gauge_depth gauge\ndemo_gauge_depth 1\n", "type 'gauge'"),
        ("# HELP demo_rows_sum Rows\n# TYPE demo_rows_sum gauge\ndemo_rows_sum 1\n", "_bucket, _count"),
        ("# HELP demoDepth D\n# TYPE demoDepth gauge\ndemoDepth 1\n", "snake_case"),
        (
            "# HELP demo_latency_seconds L\n# TYPE demo_latency_seconds histogram\n"
            'demo_latency_seconds_bucket{le="0.1"} 3\ndemo_latency_seconds_bucket{le="+Inf"} 2\n'
            "demo_latency_seconds_count 2\ndemo_latency_seconds_sum 0.5\n",
            "not cumulative",
        ),
        (
            "# HELP demo_latency_seconds L\n# TYPE demo_latency_seconds histogram\n"
            'demo_latency_seconds_bucket{le="0.1"} 1\ndemo_latency_seconds_count 2\n'
            "demo_latency_seconds_sum 0.5\n",
            "+Inf",
        ),
    ],
)
def test_each_lint_rule_finds_its_problem(text: str, complaint: str) -> None:
    found = promlint.problems(text)
    assert any(complaint in p for p in found), found


def test_a_family_declared_twice_is_refused() -> None:
    twice = "# HELP demo_depth D\n# TYPE demo_depth gauge\n# HELP demo_depth D\ndemo_depth 1\n"
    with pytest.raises(AssertionError, match="declared twice"):
        promlint.problems(twice)
