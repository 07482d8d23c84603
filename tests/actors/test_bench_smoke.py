"""The ingestion benchmarks at toy sizes: each entry point runs and its counts add up."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from bench.lib.ingest import run_backfill_bench, run_live_bench

SMALL_PAIR = "ADABTC"  # 44,136 minutes: 45 pages
LIVE_PAIRS = 2
LIVE_SPEED = 600.0
LIVE_CANDLES = 20


async def test_backfill_bench_stores_every_recorded_minute(server_urls: dict[str, URL]) -> None:
    result = await run_backfill_bench(server_urls["embedded"], [SMALL_PAIR], throttled_clones=0)
    for run in (result["free"], result["throttled"]):
        assert run["candles_stored"] == run["candles_expected"] > 0
        assert all(pair["candles"] == pair["expected"] for pair in run["per_pair"].values())
        assert run["http_429_or_418"] == 0
        assert run["candles_per_s"] > 0
    assert list(result["free"]["per_pair"]) == [SMALL_PAIR]
    assert result["throttled"]["bound_candles_per_s"] == 5000
    assert len(result["machine_before"]["loadavg"]) == 3


@pytest.mark.slow
async def test_live_bench_times_live_candles_and_measures_memory(server_urls: dict[str, URL]) -> None:
    result = await run_live_bench(server_urls["embedded"], LIVE_PAIRS, LIVE_SPEED, LIVE_CANDLES)
    assert result["candles"] >= LIVE_CANDLES
    assert result["stored_candles"] >= result["candles"]
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert result["memory"]["pair_actor"]["processes"] == 1, "the pairs share one host"
    assert result["memory"]["stream_actor"]["processes"] == 1, "and one connection"
    assert 0 < result["pair_actor_uss_mib_per_pair"] < result["memory"]["pair_actor"]["uss_mib_sum"]
    assert result["memory"]["ingest_side_total"]["rss_mib"] > 0
