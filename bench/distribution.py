"""The distributional LSTM on real months it never saw: its bands against HAR and RV30, its point
against persistence (JSON).

    .venv/bin/python bench/distribution.py > distribution.json      # ~4 min on one core
    .venv/bin/python bench/distribution.py --months BTCUSDT-2022-06 --heads qlike --epochs 2

For each month in ``months/``, one network per head is trained on the first ``--train-days``
complete UTC days (validation and calibration are its last two days each) and scored on every
later day of the month, walk-forward with the daily refit as served (:class:`DailyRecalibrated`):

* ``rv30``: persistence with RV30-scaled split conformal, two-day span (the method served before),
* ``har``: persistence with the served intervals (HAR scale, hour cells, 14-day span),
* ``lstm_<head>``: the network's point, with split conformal on its own scale (two-day span; RV30
  for the ``point`` head),
* ``scale_<head>``: persistence of the close, with split conformal on the network's scale (two-day
  span): the network's bands without its point, what the scale alone is worth.

All are scored on the same origins. Per horizon and level: coverage, interval (Winkler) score in
bps, and its relative gain over ``rv30`` and over ``har``, pooled over the months with a day-block
standard error (a day of one month is one cluster), and per month. The point: MAE skill over
persistence of the close, pooled with its day-block standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cryptocast.tune.candles import from_file
from cryptocast.tune.conformal import LEGACY_SCALED, LEVELS, SERVED
from cryptocast.tune.dataset import DAY_MS, HORIZONS, SplitSpans, targets
from cryptocast.tune.features import FeatureFrame, compute
from cryptocast.tune.heads import HEADS, distributional
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.network_scale import NetworkScale, fit_network_calibration
from cryptocast.tune.predictor import LstmPredictor, PersistencePredictor
from cryptocast.tune.scores import interval_score, ratio_gain
from cryptocast.tune.training import fit, lstm_predictor, persistence_predictor, prepare
from cryptocast.tune.walkforward import DailyRecalibrated

MONTHS = Path(__file__).resolve().parents[1] / "months"
DEFAULT_MONTHS = ("BTCUSDT-2021-03", "ETHUSDT-2022-12", "SOLUSDT-2023-12", "BTCUSDT-2024-02")
BPS = 1e4
REFERENCES = ("rv30", "har")
SPANS = SplitSpans(val_ms=2 * DAY_MS, calib_ms=2 * DAY_MS, test_ms=0)  # the test is the rest of the month


class PersistenceOnNetworkScale(PersistencePredictor):
    """Persistence of the close, its intervals scaled by a network's forecast of the spread."""

    def __init__(self, lstm: LstmPredictor, ff: FeatureFrame, idx: np.ndarray, y: np.ndarray) -> None:
        calibration = fit_network_calibration(NetworkScale(lstm.scale_returns), ff, idx, y)
        super().__init__(calibration, lstm.spec)
        self.seq_len = lstm.seq_len
        self.lstm = lstm


def month(path: Path, heads: list[str], config: LstmConfig, train_days: int) -> dict:
    """Per model: hits and interval scores per level, absolute price errors; and the day of each origin."""
    candles = from_file(path)
    ff = compute(candles)
    y_all = targets(ff)
    cut = int(ff.open_time[0]) // DAY_MS * DAY_MS + (train_days + 1) * DAY_MS
    history = candles.until(cut)
    predictors = {
        "rv30": DailyRecalibrated(persistence_predictor(history, method=LEGACY_SCALED)[0]),
        "har": DailyRecalibrated(persistence_predictor(history, method=SERVED)[0]),
    }
    val_skill = {}
    for head in heads:
        cfg = LstmConfig.from_dict(config.to_dict() | {"head": head})
        prepared = prepare(history, cfg, SPANS)
        weights, val_skill[head] = fit(prepared, cfg)
        lstm = lstm_predictor(prepared, cfg, weights)[0]
        predictors[f"lstm_{head}"] = DailyRecalibrated(lstm)
        if distributional(head):
            calib = prepared.split.calib
            scale_only = PersistenceOnNetworkScale(lstm, prepared.ff, calib, prepared.y[calib])
            predictors[f"scale_{head}"] = DailyRecalibrated(scale_only)
    idx = None
    for predictor in predictors.values():
        usable = predictor.usable_origins(candles)
        idx = usable if idx is None else np.intersect1d(idx, usable)
    idx = idx[(ff.open_time[idx] >= cut) & np.isfinite(y_all[idx]).all(axis=1)]
    y, close = y_all[idx], ff.close[idx, None]
    out: dict = {
        "day": ff.open_time[idx] // DAY_MS,
        "val_skill": val_skill,
        "models": {},
        "persistence_error": np.abs(close * (np.exp(y) - 1.0)),
    }
    cache: dict = {}
    for name, predictor in predictors.items():
        f = predictor.forecast_returns(candles, idx, cache)
        scored = {"error": np.abs(close * (np.exp(y) - np.exp(f.point)))}
        for level in LEVELS:
            lower, upper = f.point - f.half[level], f.point + f.half[level]
            scored[f"hits_{level}"] = ((y >= lower) & (y <= upper)).astype(np.float64)
            scored[f"is_{level}"] = BPS * interval_score(y, lower, upper, level)
        out["models"][name] = scored
    return out


def report(months: dict[str, dict]) -> dict:
    names = list(months)
    models = list(months[names[0]]["models"])
    cluster = np.concatenate([months[m]["day"] + k * 10**6 for k, m in enumerate(names)])

    def pooled(model: str, key: str, j: int) -> np.ndarray:
        return np.concatenate([months[m]["models"][model][key][:, j] for m in names])

    out: dict = {
        "months": {
            m: {"scored_days": len(np.unique(months[m]["day"])), "val_skill": months[m]["val_skill"]}
            for m in names
        },
        "days": len(np.unique(cluster)),
        "models": {},
    }
    base = np.concatenate([months[m]["persistence_error"] for m in names])
    for model in models:
        per_h = {}
        for j, h in enumerate(HORIZONS):
            skill, skill_se = ratio_gain(pooled(model, "error", j), base[:, j], cluster)
            entry: dict = {"mae_skill_vs_persistence": round(skill, 5), "mae_skill_se": round(skill_se, 5)}
            for level in LEVELS:
                key = str(round(level * 100))
                score = pooled(model, f"is_{level}", j)
                entry[f"coverage_{key}"] = round(float(pooled(model, f"hits_{level}", j).mean()), 4)
                entry[f"interval_score_{key}_bps"] = round(float(score.mean()), 3)
                for ref in REFERENCES:
                    gain, se = ratio_gain(score, pooled(ref, f"is_{level}", j), cluster)
                    by_month = {
                        m: round(
                            1
                            - float(
                                months[m]["models"][model][f"is_{level}"][:, j].sum()
                                / months[m]["models"][ref][f"is_{level}"][:, j].sum()
                            ),
                            4,
                        )
                        for m in names
                    }
                    entry[f"gain_{key}_vs_{ref}"] = round(gain, 4)
                    entry[f"gain_{key}_vs_{ref}_se"] = round(se, 4)
                    entry[f"gain_{key}_vs_{ref}_by_month"] = by_month
            per_h[str(h)] = entry
        out["models"][model] = per_h
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", nargs="*", default=list(DEFAULT_MONTHS), help="file stems in months/")
    parser.add_argument("--heads", nargs="*", default=["qlike", "pinball"], choices=list(HEADS))
    parser.add_argument(
        "--train-days",
        type=int,
        default=19,
        help="complete UTC days trained on (val and calibration included)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seq-len", type=int, default=30)
    parser.add_argument("--units", type=int, default=32)
    args = parser.parse_args()
    config = LstmConfig(
        seq_len=args.seq_len, units=args.units, layers=1, dropout=0.1, lr=1e-3, batch=512, epochs=args.epochs
    )
    started = time.perf_counter()
    scored = {}
    for stem in args.months:
        scored[stem] = month(MONTHS / f"{stem}.parquet", args.heads, config, args.train_days)
        print(f"{stem}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    result = report(scored)
    result |= {
        "config": config.to_dict(),
        "heads": args.heads,
        "train_days": args.train_days,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
