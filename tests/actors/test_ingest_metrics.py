"""Ingestion's counts reach ``/metrics`` through ``pair_metrics``: they move with a real ingestion
against the replay exchange (socket drops and a 429 storm included), match what the actor counted,
and keep growing across a restart of the pair instead of starting again from zero."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cryptocast.actors.budget import LocalBudget
from cryptocast.actors.ingestor import IngestConfig, PairIngestor
from cryptocast.actors.pairmetrics_flush import EXPORTED
from cryptocast.records import MINUTE_MS
from cryptocast.serve import metrics
from cryptocast.serve.reads import PAIRS_SQL, fetch
from cryptocast.sql import pairmetrics
from cryptocast.sql.database import Database
from tests import promlint
from tests.actors.helpers import ingest_setup, running, until_live, until_stored

pytestmark = [pytest.mark.embedded_only, pytest.mark.slow]

PAIR = "BTCUSDT"
FAULTS = {"drop": 0.7, "storm": 2}
CLEAR = {"drop": 0}


async def _scraped(db: Database) -> dict[str, float]:
    """``/metrics`` as the API renders it from the database: series name -> the pair's value."""
    scrape = metrics.Scrape(None, await fetch(db, PAIRS_SQL), await fetch(db, pairmetrics.READ_SQL))
    text = metrics.render(scrape).decode()
    assert promlint.problems(text) == []
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("pair") == PAIR
    }


def _expected(*ingestors: PairIngestor) -> dict[str, float]:
    return {
        f"cryptocast_{name}_total": float(sum(getattr(i.counters, field) for i in ingestors))
        for name, field in EXPORTED.items()
    }


async def test_ingestion_counters_move_and_survive_a_restart(db: Database) -> None:
    async with ingest_setup(db, PAIR, speed=300.0) as (server, first):
        async with running(first):
            await until_live(first)
            first.config.reconcile_every = 1  # a REST call per closed candle, into the storm
            server.faults.apply(FAULTS, set(server.market.symbols))
            await asyncio.sleep(4.0)
            server.faults.apply(CLEAR, set(server.market.symbols))
            target = server.clock.now() // MINUTE_MS * MINUTE_MS - 2 * MINUTE_MS
            await until_stored(first, target, timeout_s=45)
        after_first = await _scraped(db)
        assert (
            first.counters.written > 300 and first.counters.reconnects >= 1 and first.counters.throttled >= 1
        )
        assert {k: after_first.get(k, 0.0) for k in _expected(first)} == _expected(first)

        second = PairIngestor(PAIR, db, first.exchange, LocalBudget(), IngestConfig(lookback_ms=None))
        async with running(second):
            await until_live(second)
            await until_stored(second, (second.last_stored or 0) + 3 * MINUTE_MS)
        after_second = await _scraped(db)
    assert second.counters.written >= 3
    assert {k: after_second.get(k, 0.0) for k in _expected(first, second)} == _expected(first, second)
    stored = "cryptocast_ingest_candles_stored_total"
    assert after_second[stored] == after_first[stored] + second.counters.written
