"""How long must the gate's window be? Its minimum detectable effect on real months, by window length.

For each file of 1-minute candles, two near challengers of today's forecast are scored per complete
UTC day, as the gate scores them:

- bands: volatility-scaled split conformal with the RMS of the last 60 one-minute returns instead
  of 30 (RV60 vs RV30), both refitted daily on the two days before;
- point: a shrunk one-minute mean reversion, ŷ = −0.05 · r(t), against persistence of close(t).

For windows of 7, 14, 21 and 28 complete days (the first ones of each file), it prints the relative
MDE the gate would write into its decision (80 % power, level 0.05 / 4), median over the files, per
horizon. Usage::

    python bench/gate_power.py ../shared/data/binance-spot-1m/*USDT-20*.csv.gz
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from cryptocast.tune.candles import from_file
from cryptocast.tune.dataset import DAY_MS, HORIZONS, targets
from cryptocast.tune.features import compute
from cryptocast.tune.gate import ALPHA
from cryptocast.tune.scores import interval_score
from cryptocast.tune.stats import paired_test

WINDOWS = (7, 14, 21, 28)
CALIBRATION_DAYS = 2
LEVELS = (0.8, 0.95)
SLOW_WINDOW = 60
REVERSION = 0.05
MINUTES_PER_DAY = DAY_MS // 60_000


def _rms(r: np.ndarray, window: int) -> np.ndarray:
    total = np.concatenate([[0.0], np.cumsum(np.nan_to_num(r**2))])
    out = np.full(len(r), np.nan)
    out[window - 1 :] = np.sqrt((total[window:] - total[:-window]) / window)
    return out


def daily_losses(path: str) -> dict[str, np.ndarray]:
    """(complete days, horizons) losses of the champion and challenger, for bands and point."""
    ff = compute(from_file(path))
    y = targets(ff)
    r = np.concatenate([[np.nan], np.diff(np.log(ff.close))])
    scale = {"champion": ff.vol, "challenger": _rms(r, SLOW_WINDOW)}
    idx = np.flatnonzero(
        np.isfinite(y).all(axis=1) & np.isfinite(scale["champion"]) & np.isfinite(scale["challenger"])
    )
    day, y = ff.open_time[idx] // DAY_MS, y[idx]
    days, counts = np.unique(day, return_counts=True)
    full = days[counts == MINUTES_PER_DAY][CALIBRATION_DAYS:]
    root_h = np.sqrt(np.asarray(HORIZONS, dtype=np.float64))
    point = -REVERSION * np.nan_to_num(r[idx])[:, None] * np.ones(len(HORIZONS))
    out: dict[str, list] = {
        "bands_champion": [],
        "bands_challenger": [],
        "point_champion": [],
        "point_challenger": [],
    }
    for d in full:
        calib, today = (day >= d - CALIBRATION_DAYS) & (day < d), day == d
        for name, vol in scale.items():
            s = vol[idx][:, None] * root_h
            q = np.quantile(np.abs(y[calib]) / s[calib], LEVELS, axis=0)
            score = sum(
                interval_score(y[today], -s[today] * q[k], s[today] * q[k], lv) for k, lv in enumerate(LEVELS)
            )
            out[f"bands_{name}"].append((score / len(LEVELS)).mean(axis=0))
        out["point_champion"].append(np.abs(np.exp(y[today]) - 1).mean(axis=0))
        out["point_challenger"].append(np.abs(np.exp(y[today]) - np.exp(point[today])).mean(axis=0))
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    level = ALPHA / len(HORIZONS)
    mde: dict[str, dict[int, list]] = {kind: {w: [] for w in WINDOWS} for kind in ("bands", "point")}
    for path in args.files:
        losses = daily_losses(path)
        for kind in mde:
            champion, challenger = losses[f"{kind}_champion"], losses[f"{kind}_challenger"]
            for w in (w for w in WINDOWS if w <= len(champion)):
                tests = [
                    paired_test(champion[:w, j] - challenger[:w, j], level) for j in range(len(HORIZONS))
                ]
                mde[kind][w].append(
                    [t.relative(float(champion[:w, j].mean()))[1] for j, t in enumerate(tests)]
                )
    summary = {
        kind: {
            str(w): {
                "files": len(v),
                "median_mde_by_horizon": dict(
                    zip(map(str, HORIZONS), np.median(v, axis=0).round(5).tolist(), strict=True)
                ),
            }
            for w, v in by_window.items()
            if v
        }
        for kind, by_window in mde.items()
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
