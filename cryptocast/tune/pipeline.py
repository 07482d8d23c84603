"""Train one pair end to end: sweep, calibrate, score on the latest window, gate, register.

Used by ``cryptocast train``, the scheduler and the benchmark; every step reads from and writes to
the real registry, so what is scored here is exactly what serving will load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.sql.database import Database
from cryptocast.sql.writer import ms_to_dt
from cryptocast.tune import registry
from cryptocast.tune.candles import Candles, data_span, from_database
from cryptocast.tune.dataset import DAY_MS, HORIZONS, SplitSpans
from cryptocast.tune.evaluation import evaluate, json_safe
from cryptocast.tune.gate import HorizonDecision, decide, recheck
from cryptocast.tune.predictor import LSTM, PERSISTENCE, LstmPredictor, Predictor
from cryptocast.tune.sweep import SweepResult, run_sweep
from cryptocast.tune.training import lstm_predictor, persistence_predictor, prepare, recent_calibration

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
DEFAULT_TRIALS = 8
DEFAULT_EPOCHS = 4
DEFAULT_SEED = 7
MIN_BASELINE_MINUTES = 240  # persistence is calibrated as soon as a pair has this much history
CANDIDATE, CHAMPION_NOW = "candidate", "champion"


@dataclass(frozen=True, slots=True)
class TrainOptions:
    trials: int = DEFAULT_TRIALS
    epochs: int = DEFAULT_EPOCHS
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    spans: SplitSpans = field(default_factory=SplitSpans)
    period_ms: int = DAY_MS  # one observation of the gate's paired test
    keep: int = registry.KEEP_VERSIONS


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    baseline: registry.ModelRecord
    lstm: registry.ModelRecord
    decisions: list[HorizonDecision]
    rechecks: list[HorizonDecision]  # the previous champion's horizons, kept or demoted
    report: dict  # scores on the latest walk-forward window
    sweep_seconds: float
    trials: list[dict]


async def recent_candles(db: Database, sid: int, span_ms: int) -> Candles:
    """The pair's newest ``span_ms`` of candles."""
    first, last = await data_span(db, sid)
    if last is None:
        raise ValueError(f"pair {sid} has no candles")
    end = last + timedelta(milliseconds=MINUTE_MS)
    return await from_database(db, sid, max(first, end - timedelta(milliseconds=span_ms)), end)


def _span(candles: Candles) -> dict:
    return {
        "data_start": ms_to_dt(int(candles.open_time[0])),
        "data_end": ms_to_dt(int(candles.open_time[-1]) + MINUTE_MS),
    }


async def ensure_baseline(
    db: Database, store: registry.ModelStore, sid: int, calib_ms: int = 2 * DAY_MS
) -> registry.ModelRecord | None:
    """Register a calibrated persistence champion for a pair that has data but none yet."""
    existing = await registry.current(db, sid, PERSISTENCE)
    if existing is not None:
        return existing
    candles = await recent_candles(db, sid, calib_ms)
    if len(candles) < MIN_BASELINE_MINUTES:
        return None
    baseline, plain = persistence_predictor(candles, calib_ms)
    return await registry.register(
        db, store, sid, baseline, registry.CHAMPION, "first baseline: the pair has data",
        **_span(candles), metrics={"plain_calibration": plain.to_dict()},
    )


def _daily(report: dict, name: str) -> np.ndarray:
    return np.array([report["models"][name][str(h)]["daily_mae"] for h in HORIZONS]).T


def _compact(scores: dict) -> dict:
    """Per-horizon scores without the per-day lists (those stay in the report)."""
    return {h: {k: v for k, v in s.items() if not k.startswith("daily_mae") and k != "daily_persistence_mae"} for h, s in scores.items()}


async def train_pair(
    db: Database,
    store: registry.ModelStore,
    sid: int,
    options: TrainOptions,
    storage: Path,
    on_trial_done: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> TrainOutcome:
    """Sweep, calibrate and gate an LSTM for one pair; refresh its persistence baseline too."""
    candles = await recent_candles(db, sid, options.days * DAY_MS)
    started = time.perf_counter()
    sweep = await asyncio.to_thread(
        run_sweep, candles, options.spans, options.trials, options.epochs, options.seed, storage, on_trial_done, ray_address
    )
    return await gate_and_register(db, store, sid, candles, options, sweep, time.perf_counter() - started)


def _without(daily: np.ndarray, fallback: np.ndarray, horizons: set[int]) -> np.ndarray:
    """``daily`` with the columns of ``horizons`` taken from ``fallback``."""
    out = daily.copy()
    for j, h in enumerate(HORIZONS):
        if h in horizons:
            out[:, j] = fallback[:, j]
    return out


async def gate_and_register(
    db: Database,
    store: registry.ModelStore,
    sid: int,
    candles: Candles,
    options: TrainOptions,
    sweep: SweepResult,
    sweep_seconds: float = 0.0,
) -> TrainOutcome:
    """Calibrate the sweep's winner, score everything on the latest window, gate, register.

    The champion is re-checked first: a horizon where it no longer beats persistence goes back to
    persistence (and the challenger then only has persistence to beat there).
    """
    prepared = prepare(candles, sweep.config, options.spans)
    candidate, candidate_plain = lstm_predictor(prepared, sweep.config, sweep.weights)
    test_start = prepared.split.bounds[3]
    baseline, _ = persistence_predictor(candles.until(test_start), options.spans.calib_ms)
    contenders: dict[str, Predictor] = {
        CANDIDATE: candidate,
        "persistence": baseline,
        "candidate_plain_conformal": LstmPredictor(sweep.config, sweep.weights, prepared.scaler, candidate_plain),
    }
    if await registry.current(db, sid, PERSISTENCE) is not None:
        contenders[CHAMPION_NOW] = await registry.load_served(db, sid)
    report = evaluate(candles, contenders, since_ms=test_start, period_ms=options.period_ms)
    persistence_daily = _daily(report, "persistence")
    champion_daily = _daily(report, CHAMPION_NOW if CHAMPION_NOW in report["models"] else "persistence")
    champion_lstm = await registry.current(db, sid, LSTM)
    rechecks = recheck(champion_daily, persistence_daily, champion_lstm.served_horizons) if champion_lstm else []
    demoted = {d.horizon for d in rechecks if not d.promote}
    decisions = decide(_daily(report, CANDIDATE), _without(champion_daily, persistence_daily, demoted), persistence_daily)
    served = [d.horizon for d in decisions if d.promote]
    if demoted and not served:  # the champion stays, on the horizons it still earns
        kept = [h for h in champion_lstm.served_horizons if h not in demoted]
        await registry.demote(db, champion_lstm, kept, "; ".join(d.reason for d in rechecks))
    span = _span(candles)
    # Scored with calibrations fitted before the test window; served with ones refitted on the newest
    # days, so an interval is never calibrated on data older than the last retrain's.
    served_baseline, served_plain = persistence_predictor(candles, options.spans.calib_ms)
    candidate = LstmPredictor(
        sweep.config, sweep.weights, prepared.scaler, recent_calibration(candidate, candles, options.spans.calib_ms)[0]
    )
    baseline_record = await registry.register(
        db, store, sid, served_baseline, registry.CHAMPION, "recalibrated with the daily retrain", **span,
        metrics={"plain_calibration": served_plain.to_dict(), "test": _compact(report["models"]["persistence"])},
    )
    status = registry.CHAMPION if served else registry.SHADOW
    reason = "; ".join(d.reason for d in decisions)
    lstm_record = await registry.register(
        db, store, sid, candidate, status, reason, **span,
        hyperparameters=sweep.config.to_dict() | {"trials": options.trials, "epochs": options.epochs},
        metrics={
            "served_horizons": served,
            "val_skill": sweep.val_skill,
            "gate": [d.to_dict() for d in decisions],
            "champion_recheck": json_safe([d.to_dict() for d in rechecks]),
            "test": _compact(report["models"][CANDIDATE]),
            "test_plain_conformal": _compact(report["models"]["candidate_plain_conformal"]),
            "test_window": {"start": ms_to_dt(test_start).isoformat(), "days": report["days"]},
        },
    )
    await registry.prune(db, sid, options.keep)
    log.info("trained %s v%d: %s", LSTM, lstm_record.version, reason, extra={"symbol_id": sid})
    return TrainOutcome(baseline_record, lstm_record, decisions, rechecks, report, sweep_seconds, sweep.trials)
