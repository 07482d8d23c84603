"""The live prediction loop, inside the router application.

It LISTENs for the candle writer's notifications (ingestion never calls serving), asks the pair's
deployment for every horizon (champion and shadow) and stores the rows, announcing them on the
predictions channel (the API's cached reads of the pair end with it). On start it catches up on
minutes that closed while it was down, flagging those predictions late. It also watches for drift
(served skill below persistence, or interval coverage outside its band: :func:`scoring.drift`) and
queues a ``retrain`` command for the training scheduler when it finds it,
registers a pair's first persistence champion once it has enough data, and, when it manages the
config, regenerates and re-applies it whenever pairs or champions change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from datetime import timedelta

from ray import serve

from cryptocast.logs import setup_worker_logging
from cryptocast.records import ms_to_dt
from cryptocast.serve import scoring
from cryptocast.serve.config import PAIR_DEPLOYMENT, ServeOptions, generate, pair_app_name
from cryptocast.serve.metrics import LatencyBuckets
from cryptocast.serve.replicadb import replica_database
from cryptocast.sql import command_queue
from cryptocast.sql.notices import listen
from cryptocast.sql.schema import CANDLES_CHANNEL, PREDICTIONS_CHANNEL

log = logging.getLogger(__name__)

LIVE_DEPLOYMENT = "LivePredictor"
MAX_CATCHUP_MINUTES = 120  # older gaps are history, not something to predict after the fact
RECONCILE_S = 2.0
SKILL_CHECK_S = 60.0
BASELINE_RETRY_S = 30.0
LATENCY_SAMPLES = 5000
CONCURRENT_PAIRS = 8

# Stores a minute's rows and, when any were new, announces them (readers of the latest forecast
# drop what they cached for the pair): one round trip, and the news leaves with the commit.
_INSERT = """
WITH stored AS (
    INSERT INTO predictions (symbol_id, model_id, origin_time, horizon, predicted,
                             lower_80, upper_80, lower_95, upper_95, served, late)
    SELECT $1, r.model_id, to_timestamp(r.origin_ms / 1000.0), r.horizon, r.predicted,
           r.lower_80, r.upper_80, r.lower_95, r.upper_95, r.served, $2
    FROM jsonb_to_recordset($3::jsonb) AS r(model_id int, origin_ms bigint, horizon int, predicted float8,
         lower_80 float8, upper_80 float8, lower_95 float8, upper_95 float8, served bool)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT pg_notify($4, $5) WHERE EXISTS (SELECT 1 FROM stored)
"""
_PAIRS = "SELECT id, symbol FROM symbols WHERE status <> 'removed' ORDER BY id"
_LAST_PREDICTED = "SELECT max(origin_time) FROM predictions WHERE symbol_id = $1 AND served"
_RECENT_ORIGINS = """
SELECT (extract(epoch FROM open_time) * 1000)::bigint FROM price_history
WHERE symbol_id = $1 AND open_time > $2 ORDER BY open_time
"""
_RECENT_RETRAIN = """
SELECT 1 FROM commands WHERE kind = 'retrain' AND symbol = $1
AND (status IN ('pending', 'running') OR created_at > now() - $2 * interval '1 minute') LIMIT 1
"""


@serve.deployment(name=LIVE_DEPLOYMENT)
class LivePredictor:
    def __init__(self, options: dict) -> None:
        setup_worker_logging()
        self.options = ServeOptions(**options)
        self.db = replica_database(self.options.database_url_file)
        self.latency_s: deque[float] = deque(maxlen=LATENCY_SAMPLES)  # notification → rows stored
        self.latency_buckets = LatencyBuckets()  # the same, for Prometheus
        self.counts = {"notifications": 0, "stored": 0, "late": 0, "failed": 0, "retrains": 0, "applied": 0}
        self.last_error: str | None = None
        self.skill_checked: dict[int, float] = {}
        self.baseline_tried: dict[int, float] = {}
        self.applied: dict | None = None
        self.gate = asyncio.Semaphore(CONCURRENT_PAIRS)
        self.tasks = {
            asyncio.get_event_loop().create_task(self._listen()),
            asyncio.get_event_loop().create_task(self._reconcile()),
        }

    # --- notifications ------------------------------------------------------------------------------
    async def _listen(self) -> None:
        def lost(reason: str) -> None:
            self.last_error = reason  # database away: listen again once it is back, then catch up

        await listen(self.db.url, {CANDLES_CHANNEL: self._on_notify}, self.catch_up, lost)

    def _on_notify(self, note: dict) -> None:
        received = time.perf_counter()
        self.counts["notifications"] += 1
        asyncio.get_event_loop().create_task(
            self.predict_and_store(note["symbol_id"], note["symbol"], note["open_time"], False, received)
        )

    async def catch_up(self) -> int:
        """Predict (late) every minute that closed since the last stored prediction, per pair."""
        stored = 0
        async with self.db.raw() as conn:
            pairs = await conn.fetch(_PAIRS)
        for sid, symbol in pairs:
            async with self.db.raw() as conn:
                last = await conn.fetchval(_LAST_PREDICTED, sid)
                newest = await conn.fetchval(
                    "SELECT max(open_time) FROM price_history WHERE symbol_id = $1", sid
                )
                if newest is None:
                    continue
                floor = newest - timedelta(minutes=MAX_CATCHUP_MINUTES)
                since = max(last, floor) if last is not None else newest - timedelta(minutes=1)
                origins = [r[0] for r in await conn.fetch(_RECENT_ORIGINS, sid, since)]
            for origin in origins:
                stored += await self.predict_and_store(sid, symbol, origin, True, None)
        return stored

    async def predict_and_store(
        self, sid: int, symbol: str, origin_ms: int, late: bool, received: float | None
    ) -> int:
        """Ask the pair's deployment for ``origin_ms`` and store its rows; returns rows stored."""
        async with self.gate:
            try:
                handle = serve.get_deployment_handle(PAIR_DEPLOYMENT, app_name=pair_app_name(symbol))
                answer = await handle.forecast_at.remote(origin_ms)
                if answer.get("error") == "no_model":
                    await self._ensure_baseline(sid)
                    return 0
                if "rows" not in answer:
                    return 0
                async with self.db.raw() as conn:
                    news = json.dumps({"symbol_id": sid, "symbol": symbol, "origin_time": origin_ms})
                    await conn.execute(
                        _INSERT, sid, late, json.dumps(answer["rows"]), PREDICTIONS_CHANNEL, news
                    )
            except Exception as exc:  # one pair's failure must not stop the loop
                self.counts["failed"] += 1
                self.last_error = (
                    f"{symbol} at {ms_to_dt(origin_ms).isoformat()}: {type(exc).__name__}: {exc}"
                )
                log.warning("prediction not stored: %s", self.last_error)
                return 0
        if received is not None:
            self.latency_s.append(seconds := time.perf_counter() - received)
            self.latency_buckets.observe(seconds)
        self.counts["stored"] += len(answer["rows"])
        self.counts["late"] += len(answer["rows"]) if late else 0
        await self._watch_skill(sid, symbol)
        return len(answer["rows"])

    async def _ensure_baseline(self, sid: int) -> None:
        """A pair with enough history gets its persistence champion (the reconcile loop serves it)."""
        if time.monotonic() - self.baseline_tried.get(sid, -BASELINE_RETRY_S) < BASELINE_RETRY_S:
            return
        self.baseline_tried[sid] = time.monotonic()
        from cryptocast.tune.baseline import ensure_baseline
        from cryptocast.tune.registry import ModelStore

        await ensure_baseline(self.db, ModelStore(self.options.model_store), sid)

    async def _watch_skill(self, sid: int, symbol: str) -> None:
        if time.monotonic() - self.skill_checked.get(sid, -SKILL_CHECK_S) < SKILL_CHECK_S:
            return
        self.skill_checked[sid] = time.monotonic()
        await self.check_skill(sid, symbol)

    async def check_skill(self, sid: int, symbol: str) -> list[str]:
        """Queue a retrain when the served forecasts drift (:func:`scoring.drift`); returns the findings.

        Not again while a retrain of the pair is open or was asked for within the scoring window: the
        window still holds the old model's errors.
        """
        window = self.options.skill_window_minutes
        summary = scoring.served_summary(await scoring.scores(self.db, sid, window))
        findings = scoring.drift(summary, self.options.skill_min_samples)
        if not findings:
            return []
        async with self.db.raw() as conn:
            if await conn.fetchval(_RECENT_RETRAIN, symbol, window):
                return findings
        reason = f"live drift over {window} min: " + "; ".join(findings)
        if (
            await command_queue.submit_training(self.db, "retrain", symbol, "drift", reason[:1000])
            is not None
        ):
            self.counts["retrains"] += 1
            log.warning("%s: %s; retrain requested", symbol, reason)
        return findings

    # --- config ------------------------------------------------------------------------------------
    async def _reconcile(self) -> None:
        """Regenerate the config from the database and apply it when it changed."""
        from cryptocast.serve.deploy import apply_config

        while self.options.manage_config:
            try:
                config = await generate(self.db, self.options)
                if config != self.applied:
                    await apply_config(config)
                    self.applied = config
                    self.counts["applied"] += 1
            except Exception as exc:
                self.last_error = f"config: {type(exc).__name__}: {exc}"
                log.warning("%s", self.last_error)
            await asyncio.sleep(RECONCILE_S)

    # --- read by the API -----------------------------------------------------------------------------
    async def stats(self) -> dict:
        ordered = sorted(self.latency_s)

        def quantile(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "counts": dict(self.counts),
            "store_latency_s": {"n": len(ordered), "p50": quantile(0.5), "p99": quantile(0.99)},
            "store_latency_buckets": self.latency_buckets.snapshot(),
            "last_error": self.last_error,
        }
