"""The Grafana dashboard (``docs/grafana/cryptocast.json``) asks only for series that the running
API's ``/metrics`` exports: a renamed metric breaks this test, not a panel on someone's wall."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests import promlint

pytestmark = pytest.mark.slow
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "cryptocast.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and ranges left out)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)  # label matchers, ranges
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\b\d+(?:\.\d+)?(?:e-?\d+)?\b", " ", bare)  # numbers
    return {
        m.group()
        for m in IDENTIFIER.finditer(bare)
        if m.group() not in KEYWORDS and not bare[m.end() :].lstrip().startswith("(")
    }


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression of the panels, and the metric the pair variable lists labels of."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["query"]["query"])
        assert found, variable
        exprs.append(found.group(1))
    return exprs


def test_series_are_found_in_promql() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{x=~"5.."}[5m]))) / b_total'
    assert series_in(expr) == {"a_seconds_bucket", "b_total"}


async def test_every_panel_asks_for_exported_series(client: httpx.AsyncClient) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = promlint.exported_names((await client.get("/metrics")).text)
    asked = [(expr, series_in(expr)) for expr in queries(dashboard)]
    assert all(names for _, names in asked), [e for e, n in asked if not n]
    missing = {expr: names - exported for expr, names in asked if names - exported}
    assert missing == {}
    titles = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    assert titles == {"API", "Ingestion", "Training"}
