"""A Prometheus text-format check for tests: the exposition parses, and the rules ``promtool check
metrics`` lints by are kept (promtool itself is a Go binary that cannot be installed here).

The rules: every family has HELP; counters, and only counters, end in ``_total``; only histograms
and summaries end in ``_bucket``, ``_count`` or ``_sum``; names and labels are snake_case with no
reserved ``:``; no type and no abbreviated or non-base unit in a name; durations end in
``_seconds`` (a ``_created`` series is the client library's start time); no family is declared twice; histogram buckets are cumulative, end at ``+Inf`` and
agree with ``_count``.
"""

from __future__ import annotations

import math
import re

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

SNAKE = re.compile(r"[a-z_][a-z0-9_]*")
NON_BASE_UNITS = {
    "milliseconds": "seconds",
    "microseconds": "seconds",
    "nanoseconds": "seconds",
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
    "kilobytes": "bytes",
    "megabytes": "bytes",
    "gigabytes": "bytes",
    "percent": "ratio",
}
ABBREVIATIONS = {"sec", "secs", "ms", "us", "ns", "min", "mins", "hr", "kb", "mb", "gb", "pct"}
TYPE_WORDS = {"counter", "gauge", "histogram", "summary"}
DURATION_WORDS = {"latency", "duration", "lag", "age"}
RESERVED_SUFFIXES = ("_bucket", "_count", "_sum")


def declared(text: str) -> dict[str, tuple[str, str]]:
    """Every family as the text declares it: raw name -> (type, help); a repeated name raises."""
    found: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
            entry = found.setdefault(parts[2], {})
            if parts[1] in entry:
                raise AssertionError(f"{parts[2]}: {parts[1]} declared twice")
            entry[parts[1]] = parts[3] if len(parts) > 3 else ""
    return {name: (e.get("TYPE", "untyped"), e.get("HELP", "")) for name, e in found.items()}


def _name_problems(name: str, kind: str, help_text: str) -> list[str]:
    problems = []
    if not help_text.strip():
        problems.append(f"{name}: no help text")
    if not SNAKE.fullmatch(name):
        problems.append(f"{name}: not snake_case (or uses the reserved ':')")
    if kind == "counter" and not name.endswith("_total"):
        problems.append(f'{name}: counter metrics should have the "_total" suffix')
    if kind != "counter" and name.endswith("_total"):
        problems.append(f'{name}: non-counter metrics should not have the "_total" suffix')
    if kind not in ("histogram", "summary") and name.endswith(RESERVED_SUFFIXES):
        problems.append(f"{name}: only histograms and summaries end in _bucket, _count or _sum")
    words = name.split("_")
    for word in words:
        if word in NON_BASE_UNITS:
            problems.append(f"{name}: use the base unit {NON_BASE_UNITS[word]!r} instead of {word!r}")
        if word in ABBREVIATIONS:
            problems.append(f"{name}: use the full unit name instead of {word!r}")
        if word in TYPE_WORDS:
            problems.append(f"{name}: the metric's type {word!r} is in its name")
    timed = name.removesuffix("_created").removesuffix("_total")  # _created: the client's start time
    if DURATION_WORDS & set(words) and not timed.endswith("_seconds"):
        problems.append(f"{name}: a duration should end in _seconds")
    return problems


def _histogram_problems(family: Metric) -> list[str]:
    problems = []
    series: dict[tuple, dict[str, list]] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"buckets": [], "count": []})
        if sample.name == family.name + "_bucket":
            entry["buckets"].append((float(sample.labels["le"]), sample.value))
        elif sample.name == family.name + "_count":
            entry["count"].append(sample.value)
    for key, entry in series.items():
        buckets = sorted(entry["buckets"])
        counts = [n for _, n in buckets]
        where = f"{family.name}{dict(key)}"
        if not buckets or not math.isinf(buckets[-1][0]):
            problems.append(f"{where}: no +Inf bucket")
            continue
        if counts != sorted(counts):
            problems.append(f"{where}: buckets are not cumulative: {buckets}")
        if entry["count"] != [counts[-1]]:
            problems.append(f"{where}: _count {entry['count']} is not the +Inf bucket {counts[-1]}")
    return problems


def problems(text: str) -> list[str]:
    """Everything promtool's lint would say about ``text``, plus anything the parser refuses."""
    found = []
    for name, (kind, help_text) in declared(text).items():
        found += _name_problems(name, kind, help_text)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found += [
                f"{sample.name}: label {k!r} is not snake_case"
                for k in sample.labels
                if not SNAKE.fullmatch(k)
            ]
            if family.type == "counter" and sample.value < 0:
                found.append(f"{sample.name}: a counter below zero")
        if family.type == "histogram":
            found += _histogram_problems(family)
    return found


def exported_names(text: str) -> set[str]:
    """The series names a PromQL expression can use: each family's samples' names, with and
    without samples (a histogram's _bucket, _sum and _count; a counter's _total)."""
    names = set()
    for name, (kind, _) in declared(text).items():
        names.add(name)
        if kind == "histogram":
            names |= {name + s for s in RESERVED_SUFFIXES}
    return names
