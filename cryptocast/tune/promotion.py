"""The promotion step of a training: calibrate the sweep's winner, score, gate, register.

The sweep's winner is calibrated and scored with the pair's champion and persistence on the latest
walk-forward window; the champion is re-checked against persistence, then the gate
(:mod:`cryptocast.tune.gate`) decides per horizon whether the challenger serves. What is scored here
is read from and written to the real registry, so it is exactly what serving will load, and
everything registered lands in one transaction: a training stopped at any point leaves the
registry, and so the served champion, as it was.
"""

from __future__ import annotations

import logging

import numpy as np

from cryptocast.records import ms_to_dt
from cryptocast.sql import pairmetrics
from cryptocast.sql.database import Database
from cryptocast.tune import registry
from cryptocast.tune.baseline import registered_span
from cryptocast.tune.candles import Candles, history_ms
from cryptocast.tune.dataset import HORIZONS, SplitSpans
from cryptocast.tune.evaluation import evaluate, json_safe
from cryptocast.tune.gate import decide, recheck
from cryptocast.tune.predictor import LSTM, PERSISTENCE, LstmPredictor, Predictor
from cryptocast.tune.sweep import SweepResult
from cryptocast.tune.training import lstm_predictor, persistence_predictor, prepare, recent_calibration
from cryptocast.tune.training_run import TrainOptions, TrainOutcome

log = logging.getLogger(__name__)

CANDIDATE, CHAMPION_NOW = "candidate", "champion"
BANDS_LOSS = "daily_interval_score"  # per day, the interval score averaged over the 80 and 95 % bands


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
    span = registered_span(candles)
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
        await pairmetrics.add_on(conn, sid, {"model_promotions" if served else "model_refusals": 1})
    await registry.prune(db, sid, options.keep)
    log.info("trained %s v%d: %s", LSTM, lstm_record.version, reason, extra={"symbol_id": sid})
    return TrainOutcome(
        baseline_record, lstm_record, decisions, rechecks, report, sweep_seconds, sweep.trials, spans
    )
