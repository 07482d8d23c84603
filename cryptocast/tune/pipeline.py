"""Train one pair end to end: sweep, calibrate, score on the latest window, gate, register.

Used by the training scheduler, ``cryptocast train --local`` and the benchmark; every step reads
from and writes to the real registry, so what is scored here is exactly what serving will load.
A training's spans are fitted to the history the pair has (:mod:`cryptocast.tune.history`), its
progress is reported as it goes, and everything it registers lands in one transaction: a training
stopped at any point leaves the registry, and so the served champion, as it was.
"""

from __future__ import annotations

import asyncio
import logging
import math
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
from cryptocast.tune.conformal import SERVED
from cryptocast.tune.dataset import DAY_MS, HORIZONS, SplitSpans
from cryptocast.tune.evaluation import evaluate, json_safe
from cryptocast.tune.gate import HorizonDecision, decide, recheck
from cryptocast.tune.history import HistoryNeeds
from cryptocast.tune.predictor import LSTM, PERSISTENCE, LstmPredictor, Predictor
from cryptocast.tune.sweep import SweepProgress, SweepResult, run_sweep
from cryptocast.tune.training import lstm_predictor, persistence_predictor, prepare, recent_calibration

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
DEFAULT_TRIALS = 8
DEFAULT_EPOCHS = 4
DEFAULT_SEED = 7
MIN_BASELINE_MINUTES = 240  # persistence is calibrated as soon as a pair has this much history
RECALIBRATION_WARMUP_MS = DAY_MS  # candles before the calibration span, for the features' lookback
CANDIDATE, CHAMPION_NOW = "candidate", "champion"
BANDS_LOSS = "daily_interval_score"  # per day, the interval score averaged over the 80 and 95 % bands


@dataclass(frozen=True, slots=True)
class TrainOptions:
    trials: int = DEFAULT_TRIALS
    epochs: int = DEFAULT_EPOCHS
    days: int = DEFAULT_DAYS
    seed: int = DEFAULT_SEED
    needs: HistoryNeeds = field(default_factory=HistoryNeeds)  # spans preferred, and the least that will do
    period_ms: int = DAY_MS  # one observation of the gate's paired test
    keep: int = registry.KEEP_VERSIONS


Progress = Callable[[dict], None]  # told {"phase": …} and, during the sweep, trial counts, best score, ETA


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    baseline: registry.ModelRecord
    lstm: registry.ModelRecord
    decisions: list[HorizonDecision]
    rechecks: list[HorizonDecision]  # the previous champion's horizons, kept or demoted
    report: dict  # scores on the latest walk-forward window
    sweep_seconds: float
    trials: list[dict]
    spans: SplitSpans

    def summary(self) -> dict:
        """What a training command reports as its result: versions, the gate's verdict per horizon."""
        return {
            "lstm": {
                "version": self.lstm.version,
                "status": self.lstm.status,
                "served_horizons": self.lstm.served_horizons,
            },
            "baseline": {"version": self.baseline.version},
            "gate": [
                {
                    "horizon": d.horizon,
                    "promoted": d.promote,
                    "p_vs_champion": _finite(d.p_vs_champion),
                    "p_vs_persistence": _finite(d.p_vs_persistence),
                    "mde": _finite(d.mde),
                    "days": d.days,
                    "reason": d.reason,
                }
                for d in self.decisions
            ],
            "champion_recheck": [
                {"horizon": d.horizon, "kept": d.promote, "reason": d.reason} for d in self.rechecks
            ],
            "val_skill": self.lstm.metrics.get("val_skill"),
            "test_days": self.report["days"],
            "spans_days": {
                k: v / DAY_MS
                for k, v in (
                    ("val", self.spans.val_ms),
                    ("calib", self.spans.calib_ms),
                    ("test", self.spans.test_ms),
                )
            },
            "sweep_seconds": round(self.sweep_seconds, 1),
            "trials": len(self.trials),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value  # NaN (a recheck has no champion comparison) is not JSON


async def recent_candles(db: Database, sid: int, span_ms: int) -> Candles:
    """The pair's newest ``span_ms`` of candles."""
    first, last = await data_span(db, sid)
    if first is None or last is None:
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
    candles = await recent_candles(db, sid, max(calib_ms, SERVED.span_ms) + RECALIBRATION_WARMUP_MS)
    if len(candles) < MIN_BASELINE_MINUTES:
        return None
    baseline, plain = persistence_predictor(candles, calib_ms)
    return await registry.register(
        db,
        store,
        sid,
        baseline,
        registry.CHAMPION,
        "first baseline: the pair has data",
        **_span(candles),
        metrics={"plain_calibration": plain.to_dict()},
    )


def _daily(report: dict, name: str, loss: str = "daily_mae") -> np.ndarray:
    """(complete days, horizons) per-day losses of one model: the gate's evidence, partial days dropped."""
    complete = np.asarray(report["complete_days"], dtype=bool)
    return np.array([report["models"][name][str(h)][loss] for h in HORIZONS]).T[complete]


def _compact(scores: dict) -> dict:
    """Per-horizon scores without the per-day lists (those stay in the report)."""
    return {
        h: {k: v for k, v in s.items() if not isinstance(v, list) or not k.startswith("daily_")}
        for h, s in scores.items()
    }


def history_ms(candles: Candles) -> int:
    """The span the candles cover, first minute to the end of the last."""
    return int(candles.open_time[-1]) + MINUTE_MS - int(candles.open_time[0]) if len(candles) else 0


async def train_pair(
    db: Database,
    store: registry.ModelStore,
    sid: int,
    options: TrainOptions,
    storage: Path,
    on_progress: Progress | None = None,
    ray_address: str | None = None,
) -> TrainOutcome:
    """Sweep, calibrate and gate an LSTM for one pair; refresh its persistence baseline too.

    Raises :class:`~cryptocast.tune.history.NotEnoughHistory` (saying how much more is needed) when
    the pair's history is below the minimum, before any work is done.
    """
    tell = on_progress or (lambda _progress: None)
    tell({"phase": "loading"})
    candles = await recent_candles(db, sid, options.days * DAY_MS)
    spans = options.needs.fit_spans(history_ms(candles))
    started = time.perf_counter()

    def sweep_progress(p: SweepProgress) -> None:
        tell(
            {
                "phase": "sweep",
                "trial": p.done,
                "trials": p.total,
                "best_val_skill": p.best_val_skill,
                "elapsed_s": round(p.elapsed_s, 1),
                "eta_s": None if p.eta_s is None else round(p.eta_s, 1),
            }
        )

    sweep = await asyncio.to_thread(
        run_sweep,
        candles,
        spans,
        options.trials,
        options.epochs,
        options.seed,
        storage,
        sweep_progress,
        ray_address,
    )
    tell(
        {
            "phase": "gating",
            "trial": options.trials,
            "trials": options.trials,
            "best_val_skill": sweep.val_skill,
            "elapsed_s": round(time.perf_counter() - started, 1),
            "eta_s": None,
        }
    )
    return await gate_and_register(
        db, store, sid, candles, options, sweep, time.perf_counter() - started, spans
    )


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
    spans: SplitSpans | None = None,
) -> TrainOutcome:
    """Calibrate the sweep's winner, score everything on the latest window, gate, register.

    The champion is re-checked first: a horizon where it no longer beats persistence goes back to
    persistence (and the challenger then only has persistence to beat there). The demotion, the
    recalibrated baseline and the new LSTM are one transaction.
    """
    spans = spans or options.needs.fit_spans(history_ms(candles))
    prepared = prepare(candles, sweep.config, spans)
    candidate, candidate_plain = lstm_predictor(prepared, sweep.config, sweep.weights)
    test_start = prepared.split.bounds[3]
    baseline, _ = persistence_predictor(candles.until(test_start), spans.calib_ms)
    contenders: dict[str, Predictor] = {
        CANDIDATE: candidate,
        "persistence": baseline,
        "candidate_plain_conformal": LstmPredictor(
            sweep.config, sweep.weights, prepared.scaler, candidate_plain
        ),
    }
    if await registry.current(db, sid, PERSISTENCE) is not None:
        contenders[CHAMPION_NOW] = await registry.load_served(db, sid)
    report = evaluate(candles, contenders, since_ms=test_start, period_ms=options.period_ms)
    persistence_daily = _daily(report, "persistence")
    champion_daily = _daily(report, CHAMPION_NOW if CHAMPION_NOW in report["models"] else "persistence")
    champion_lstm = await registry.current(db, sid, LSTM)
    rechecks = (
        recheck(champion_daily, persistence_daily, champion_lstm.served_horizons) if champion_lstm else []
    )
    demoted = {d.horizon for d in rechecks if not d.promote}
    champion_bands = _daily(
        report, CHAMPION_NOW if CHAMPION_NOW in report["models"] else "persistence", BANDS_LOSS
    )
    decisions = decide(
        _daily(report, CANDIDATE),
        _without(champion_daily, persistence_daily, demoted),
        persistence_daily,
        bands=(
            _daily(report, CANDIDATE, BANDS_LOSS),
            _without(champion_bands, _daily(report, "persistence", BANDS_LOSS), demoted),
        ),
    )
    served = [d.horizon for d in decisions if d.promote]
    span = _span(candles)
    # Scored with calibrations fitted before the test window; served with ones refitted on the newest
    # days, so an interval is never calibrated on data older than the last retrain's.
    served_now = contenders.get(CHAMPION_NOW)
    served_baseline, served_plain = persistence_predictor(
        candles, spans.calib_ms, previous=served_now.calibration if served_now is not None else None
    )
    candidate = LstmPredictor(
        sweep.config,
        sweep.weights,
        prepared.scaler,
        recent_calibration(candidate, candles, spans.calib_ms)[0],
    )
    status = registry.CHAMPION if served else registry.SHADOW
    reason = "; ".join(d.reason for d in decisions)
    async with db.begin() as conn:  # all of it or none of it: the served champion never sees half a training
        # the champion stays, on the horizons it still earns (demotions imply a champion LSTM)
        if demoted and not served and champion_lstm is not None:
            kept = [h for h in champion_lstm.served_horizons if h not in demoted]
            await registry.demote_on(conn, champion_lstm, kept, "; ".join(d.reason for d in rechecks))
        baseline_record = await registry.register_on(
            conn,
            store,
            sid,
            served_baseline,
            registry.CHAMPION,
            "recalibrated with the daily retrain",
            **span,
            metrics={
                "plain_calibration": served_plain.to_dict(),
                "test": _compact(report["models"]["persistence"]),
            },
        )
        lstm_record = await registry.register_on(
            conn,
            store,
            sid,
            candidate,
            status,
            reason,
            **span,
            hyperparameters=sweep.config.to_dict() | {"trials": options.trials, "epochs": options.epochs},
            metrics={
                "served_horizons": served,
                "val_skill": sweep.val_skill,
                "gate": json_safe([d.to_dict() for d in decisions]),
                "champion_recheck": json_safe([d.to_dict() for d in rechecks]),
                "test": _compact(report["models"][CANDIDATE]),
                "test_plain_conformal": _compact(report["models"]["candidate_plain_conformal"]),
                "test_window": {"start": ms_to_dt(test_start).isoformat(), "days": report["days"]},
            },
        )
    await registry.prune(db, sid, options.keep)
    log.info("trained %s v%d: %s", LSTM, lstm_record.version, reason, extra={"symbol_id": sid})
    return TrainOutcome(
        baseline_record, lstm_record, decisions, rechecks, report, sweep_seconds, sweep.trials, spans
    )


async def recalibrate_pair(
    db: Database, store: registry.ModelStore, sid: int, calib_ms: int = SplitSpans().calib_ms
) -> dict:
    """Refit the served intervals on the newest ``calib_ms`` without training: a day with no retrain
    still gets its daily recalibration. The persistence champion and the LSTM champion (its weights
    and served horizons kept) each get a new version, registered together."""
    baseline = await registry.current(db, sid, PERSISTENCE)
    if baseline is None:
        raise registry.NoChampion(f"pair {sid} has no persistence champion yet: nothing to recalibrate")
    candles = await recent_candles(db, sid, max(calib_ms, SERVED.span_ms) + RECALIBRATION_WARMUP_MS)
    if len(candles) < MIN_BASELINE_MINUTES:
        raise ValueError(
            f"only {len(candles)} minutes of candles; recalibrating needs {MIN_BASELINE_MINUTES}"
        )
    span = _span(candles)
    new_baseline, plain = persistence_predictor(
        candles, calib_ms, previous=registry.load(baseline).calibration
    )
    champion = await registry.current(db, sid, LSTM)
    result: dict = {}
    async with db.begin() as conn:
        record = await registry.register_on(
            conn,
            store,
            sid,
            new_baseline,
            registry.CHAMPION,
            f"daily recalibration of v{baseline.version}",
            **span,
            metrics={"plain_calibration": plain.to_dict(), "recalibrated_from": baseline.version},
        )
        result["baseline"] = {"version": record.version, "from": baseline.version}
        if champion is not None and champion.artifact_uri:
            lstm = registry.load_as(LstmPredictor, champion)
            refit = LstmPredictor(
                lstm.config, lstm.weights, lstm.scaler, recent_calibration(lstm, candles, calib_ms)[0]
            )
            kept = {k: v for k, v in champion.metrics.items() if k != "artifact_sha256"}
            lstm_record = await registry.register_on(
                conn,
                store,
                sid,
                refit,
                registry.CHAMPION,
                f"daily recalibration of v{champion.version}",
                data_start=champion.data_start,
                data_end=span["data_end"],
                hyperparameters=champion.hyperparameters,
                metrics=kept | {"recalibrated_from": champion.version},
            )
            result["lstm"] = {
                "version": lstm_record.version,
                "from": champion.version,
                "served_horizons": lstm_record.served_horizons,
            }
    return result
