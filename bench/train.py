"""Benchmark: a daily retrain sweep for one pair and the inference latency of what it registers (JSON).

Loads a bundled recording into PostgreSQL (the embedded server under the data directory unless
CRYPTOCAST_DATABASE_URL is set), registers the persistence baseline, runs the Ray Tune sweep on the
newest ``--days`` of it, and times ``predict`` on the served model. ``--until`` keeps later minutes
out of the database, so they can be scored afterwards as unseen data with ``cryptocast evaluate``;
``--latency-only`` re-times inference of what is registered, without training again.

Ray is started here, on the main thread, and shut down before the database: Ray's local servers
(GCS, raylet) die with the *thread* that started them (Linux's parent-death signal follows the
thread), and the sweep runs in a worker thread that ends with the event loop. Started there, they
were killed before the process ended, and Ray's exit handler then waited 60 s for the dead GCS and
exited 1.

    python bench/train.py --pair BTCUSDT --trials 8 --days 30 > bench-train.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cryptocast.actors.ray_runtime import start_ray, stop_ray
from cryptocast.exchange.recordings import BUNDLED_DIR, split_symbol
from cryptocast.settings import get_settings
from cryptocast.sql import migrate
from cryptocast.sql.database import Database
from cryptocast.sql.location import database_url
from cryptocast.sql.queries import add_symbol, candle_count, symbol_id
from cryptocast.sql.writer import CandleWriter
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline
from cryptocast.tune.candles import from_file, recent_candles
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.features import compute_tail
from cryptocast.tune.pipeline import train_pair
from cryptocast.tune.predictor import LSTM, ServedPredictor
from cryptocast.tune.sweep import RAY_CPUS, feature_sets
from cryptocast.tune.training_run import TrainOptions

DERIVED = ("close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
LATENCY_CALLS = 500
INFERENCE_TARGET_MS = 5
WRITE_BATCH = 20_000


def _records(frame):
    from cryptocast.records import MINUTE_MS, Candle

    for t, o, h, lo, c, v in frame[["open_time_ms", "open", "high", "low", "close", "volume"]].itertuples(
        index=False
    ):
        typical = (h + lo + c) / 3
        yield Candle(
            int(t),
            o,
            h,
            lo,
            c,
            v,
            int(t) + MINUTE_MS - 1,
            v * typical,
            0,
            v / 2,
            v * typical / 2,
            derived_fields=DERIVED,
        )


async def load(db: Database, pair: str, until_ms: int | None) -> int:
    """The pair's bundled recording (up to ``until_ms``) in price_history; idempotent."""
    sid = await symbol_id(db, pair)
    if sid is None:
        base, quote = split_symbol(pair)
        sid = await add_symbol(db, pair, base, quote, status="live")
    if await candle_count(db, sid) == 0:
        path = next(p for p in sorted(BUNDLED_DIR.glob(f"{pair}-*.parquet")))
        candles = from_file(path)
        frame = (candles.until(until_ms) if until_ms else candles).frame
        records = list(_records(frame))
        writer = CandleWriter(db)
        for i in range(0, len(records), WRITE_BATCH):
            await writer.write(sid, records[i : i + WRITE_BATCH])
    return sid


def _summary(times_ms: list[float]) -> dict:
    return {
        "median": round(statistics.median(times_ms), 3),
        "p99": round(float(np.percentile(times_ms, 99)), 3),
        "calls": len(times_ms),
    }


def latency_ms(predictor: ServedPredictor, candles) -> dict:
    """Per call on the newest minute of a day of history: ``predict`` (features + network) in wall
    time and in this thread's CPU time (what the call costs, whatever else the cores are running),
    and the features alone (``compute_tail``, the slice ``predict`` computes)."""
    predictor.predict(candles)
    calls, cpu, features = [], [], []
    for _ in range(LATENCY_CALLS):
        start, start_cpu = time.perf_counter(), time.thread_time()
        predictor.predict(candles)
        middle, middle_cpu = time.perf_counter(), time.thread_time()
        compute_tail(candles, predictor.seq_len, predictor.spec)
        calls.append((middle - start) * 1000)
        cpu.append((middle_cpu - start_cpu) * 1000)
        features.append((time.perf_counter() - middle) * 1000)
    return {
        "predict": _summary(calls),
        "predict_cpu": _summary(cpu),
        "features": _summary(features),
        "window_minutes": predictor.window_minutes,
    }


async def _train(
    db: Database, store: registry.ModelStore, sid: int, args: argparse.Namespace, storage: Path
) -> dict:
    options = TrainOptions(trials=args.trials, epochs=args.epochs, days=args.days)
    started = time.perf_counter()
    outcome = await train_pair(db, store, sid, options, storage)
    total = time.perf_counter() - started
    candles = await recent_candles(db, sid, args.days * DAY_MS)
    return {
        "days": args.days,
        "data_minutes": len(candles),
        "refused_feature_sets": feature_sets(candles)[1],  # order flow the replay only derives
        "trials": args.trials,
        "max_epochs": args.epochs,
        "sweep_seconds": round(outcome.sweep_seconds, 1),
        "train_pair_seconds": round(total, 1),
        "target_seconds": 600,
        "best_config": outcome.lstm.hyperparameters,  # "head": what the network forecasts beside the point
        "val_skill": outcome.lstm.metrics["val_skill"],
        "lstm_version": outcome.lstm.version,
        "lstm_status": outcome.lstm.status,
        "served_horizons": outcome.lstm.served_horizons,
        "gate": [d.to_dict() for d in outcome.decisions],
        "trial_val_skills": [t["val_skill"] for t in outcome.trials],
        "test_skill": {h: s["skill"] for h, s in outcome.report["models"]["candidate"].items()},
    }


async def _latencies(db: Database, sid: int, lstm: registry.ModelRecord) -> dict:
    """What the pair serves now, and its newest LSTM on every horizon in NumPy and through TF."""
    candles = await recent_candles(db, sid, DAY_MS)
    served = await registry.load_served(db, sid)
    latency = {"served_numpy": latency_ms(served, candles)}
    for backend, use_tf in (("lstm_numpy", False), ("lstm_tf_function", True)):
        every_horizon = ServedPredictor(served.baseline, registry.load(lstm, use_tf), set(HORIZONS))
        latency[backend] = latency_ms(every_horizon, candles)
    return latency


async def bench(args: argparse.Namespace, url) -> dict:
    settings = get_settings()
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    store = registry.ModelStore(settings.model_store)
    try:
        until_ms = int(args.until.replace(tzinfo=UTC).timestamp() * 1000) if args.until else None
        sid = await load(db, args.pair, until_ms)
        await ensure_baseline(db, store, sid)
        result = {
            "bench": "train",
            "pair": args.pair,
            "until": args.until.isoformat() if args.until else None,
        }
        if not args.latency_only:
            result |= await _train(db, store, sid, args, settings.data_dir / "tune")
        lstm = await registry.current(db, sid, LSTM) or await registry.current(db, sid, LSTM, registry.SHADOW)
        return result | {
            "lstm_config": lstm.hyperparameters,
            "inference_ms": await _latencies(db, sid, lstm),
            "inference_target_ms": INFERENCE_TARGET_MS,
            "cpus": os.cpu_count(),
            "load_average": [round(x, 1) for x in os.getloadavg()],  # other work on the machine
            "machine": platform.processor() or platform.machine(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="BTCUSDT")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--until", type=datetime.fromisoformat, default=None, help="load minutes before this UTC time only"
    )
    parser.add_argument(
        "--latency-only", action="store_true", help="time inference of the registered models, no training"
    )
    args = parser.parse_args()
    with database_url(get_settings()) as url:
        if not args.latency_only:
            start_ray(num_cpus=RAY_CPUS)  # the sweep joins it
        try:
            result = asyncio.run(bench(args, url))
        finally:
            stop_ray()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
