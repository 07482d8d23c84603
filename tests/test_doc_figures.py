"""Figures quoted in the README and docs are the recorded benchmark output, not retyped numbers.

Each claim names a document, a recorded JSON file under ``bench/results/``, a path into it and the
way the document writes the value; the test formats the recorded value and finds it in the text.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# (document, recorded file, dotted path into it, how the document writes the value)
CLAIMS = [
    ("README.md", "backfill.json", "free.candles_stored", "{:,} of "),
    ("README.md", "backfill.json", "free.candles_per_s", "**{:,} candles/s**"),
    ("README.md", "backfill.json", "free.ingest_cpu_us_per_candle", "ingest-side CPU {} µs per candle"),
    ("README.md", "backfill.json", "free.cpu_s_database", "PostgreSQL {} s"),
    ("README.md", "backfill.json", "throttled.candles_stored", "{:,} candles, **0 × 429**"),
    ("README.md", "backfill.json", "throttled.http_429_or_418", "**{} × 429**"),
    (
        "README.md",
        "backfill.json",
        "throttled.candles_per_s_full_minutes",
        "{:,} candles/s over whole minutes",
    ),
    ("README.md", "backfill.json", "throttled.ratio_to_bound_full_minutes", "**{:.2f} × the bound**"),
    (
        "docs/scaling.md",
        "backfill.json",
        "throttled.ratio_to_bound_full_minutes",
        "reaches {:.2f} × the bound",
    ),
    ("docs/scaling.md", "backfill.json", "throttled.ratio_to_bound", "end-to-end ratio, {:.2f},"),
    ("docs/scaling.md", "backfill.json", "throttled.candles_per_s_full_minutes", "**{:,} candles/s = "),
    ("docs/scaling.md", "scale.json", "one_node.process_per_pair.latency_ms.p99", "/ **{:.1f} ms** |"),
    ("docs/scaling.md", "scale.json", "one_node.packed.latency_ms.p99", "/ **{:.1f} ms** |"),
    (
        "docs/scaling.md",
        "scale.json",
        "one_node.process_per_pair.pair_actor_uss_mib_per_pair",
        "| **{:.1f} MiB** |",
    ),
    ("docs/scaling.md", "scale.json", "one_node.packed.pair_actor_uss_mib_per_pair", "| **{:.1f} MiB** |"),
    ("docs/scaling.md", "scale.json", "cluster.pair_actor_uss_mib_per_pair", "| **{:.1f} MiB** |"),
    ("docs/scaling.md", "scale.json", "cluster.targets.lag_p99_s_measured", "**{:.2f} s** (target ≤ 2 s)"),
    ("docs/scaling.md", "scale.json", "cluster.kill.pairs_moved", "holding {} pairs"),
    ("docs/scaling.md", "scale.json", "cluster.kill.caught_up_after_s", "exchange\n{:.1f} s after it"),
    ("README.md", "scale.json", "one_node.packed.latency_ms.p99", "**p99 {:.1f} ms**"),
    ("README.md", "scale.json", "cluster.targets.lag_p99_s_measured", "ingest lag p99 **{:.2f} s**"),
    ("README.md", "scale.json", "cluster.kill.caught_up_after_s", "caught up {:.1f} s after the kill"),
    ("docs/scaling.md", "scale-before-after.json", "before.one_node.packed.latency_ms.p99", "/ {:.1f} ms |"),
    ("docs/scaling.md", "scale-before-after.json", "after.one_node.packed.latency_ms.p99", "/ {:.1f} ms** |"),
    ("docs/scaling.md", "scale-before-after.json", "after.cluster.steady.pooled_ms.p50", "**{:.1f} / "),
    ("README.md", "scale-before-after.json", "before.one_node.packed.latency_ms.p99", "p99 {:.1f} → "),
    ("README.md", "scale-before-after.json", "after.one_node.packed.latency_ms.p99", " → {:.1f} ms"),
    (
        "docs/scaling.md",
        "scale-300.json",
        "cluster.memory_by_node.w1.uss_mib",
        "and **{:.0f}–635 MiB** of unique",
    ),
    ("docs/scaling.md", "scale-300.json", "cluster.pair_actor_uss_mib_per_pair", "(**{:.1f} MiB per pair**;"),
    ("docs/scaling.md", "scale-300.json", "cluster.targets.lag_p99_s_measured", "lag p99 was\n**{:.2f} s**"),
    (
        "docs/scaling.md",
        "scale-300.json",
        "cluster.kill.caught_up_after_s",
        "caught up {:.1f} s after the kill",
    ),
    (
        "README.md",
        "scale-300.json",
        "cluster.targets.lag_p99_s_measured",
        "ingest lag p99 **{:.2f} s**: the 2",
    ),
    ("docs/scaling.md", "scale-follow-up.json", "before.packed.0.latency_ms.p99", "| {:.1f} ("),
    ("docs/scaling.md", "scale-follow-up.json", "after.packed.2.latency_ms.max", "{:.1f}) ms |\n"),
    ("docs/scaling.md", "scale-follow-up-busy.json", "before.packed.1.latency_ms.max", "{:.1f}) ms |"),
    ("docs/scaling.md", "scale-follow-up-busy.json", "after.packed.1.latency_ms.p99", ", {:.1f} ("),
]


@cache
def _recorded(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text())


def _at(document: dict[str, Any], dotted: str) -> Any:
    value: Any = document
    for key in dotted.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]  # a list: the run's number
    return value


@pytest.mark.parametrize(
    ("doc", "recorded", "path", "written"), CLAIMS, ids=[f"{c[0]}:{c[2]}" for c in CLAIMS]
)
def test_a_quoted_figure_is_the_recorded_benchmark_value(
    doc: str, recorded: str, path: str, written: str
) -> None:
    expected = written.format(_at(_recorded(recorded), path))
    assert expected in (ROOT / doc).read_text(), (
        f"{doc} should quote {expected!r} from bench/results/{recorded}"
    )


def test_every_recorded_file_is_listed_with_the_command_that_made_it() -> None:
    listing = (RESULTS / "README.md").read_text()
    for path in RESULTS.glob("*.json"):
        assert f"`{path.name}`" in listing and f"> bench/results/{path.name}" in listing
