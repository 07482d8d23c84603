"""The promotion gate, per horizon: a challenger serves a horizon only on evidence, not on a raw difference.

Evidence is a one-sided test on per-day loss differentials over the latest walk-forward window,
complete UTC days only (a partial day weighs a few hours like a whole day and tilts the mean toward
whatever those hours held). The loss is MAE for the point and the interval score (mean over the 80
and 95 % bands) for the bands; the test is a t-test with a HAC standard error built for few days
(:mod:`cryptocast.tune.stats`), because volatility regimes, and a challenger's edge with them, last
several days.

At each horizon the challenger must beat both what the pair serves now (its champion) and
persistence; promotion needs both (an intersection–union test, so the larger of the two p-values is
the horizon's p). Four horizons are four chances to be lucky, so Holm's step-down correction holds
the chance of any false promotion of a pair at a retrain to ``ALPHA``. A challenger that brings its
own bands is also held back where its interval score is significantly worse than the champion's:
a check that can only refuse, so it costs no error rate.

Every decision carries its minimum detectable effect: the relative improvement the test would find
with 80 % power at Holm's first-step level ``ALPHA / horizons``, from the window's own daily spread
and length. A refusal with an MDE of 3 % says "no skill above 3 % seen", not "no skill". The
champion is held to the same standard at every retrain (:func:`recheck`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cryptocast.tune.dataset import HORIZONS
from cryptocast.tune.stats import POWER, PairedTest, holm, paired_test

ALPHA = 0.05
MIN_DAYS = 5  # fewer complete days: no promotion (a t-test with three or four degrees of freedom is blind)
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class HorizonDecision:
    horizon: int
    promote: bool  # for a recheck: the champion keeps the horizon
    p_vs_champion: float
    p_vs_persistence: float
    reason: str
    loss: str = "mae"
    days: int = 0  # complete days the test used
    improvement: float = NAN  # mean daily improvement over the champion, as a share of its loss
    p_holm: float = NAN  # the horizon's p-value after Holm's correction over the tested horizons
    mde: float = NAN  # relative improvement detectable with POWER at ALPHA / horizons
    power: float = POWER
    bands_improvement: float = NAN  # the interval score's relative improvement over the champion
    p_bands_worse: float = NAN  # one-sided p that the challenger's bands are worse

    def to_dict(self) -> dict:
        return asdict(self)


def _relative(test: PairedTest, baseline: np.ndarray) -> tuple[float, float]:
    return test.relative(float(np.mean(baseline)) if len(baseline) else NAN)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f} %"


def _versus(improvement: float) -> str:
    """``1.20 % better than`` / ``1.31 % worse than``: a negative improvement reads as what it is."""
    if math.isnan(improvement):
        return "n/a vs"
    return f"{_pct(abs(improvement))} {'better' if improvement >= 0 else 'worse'} than"


def decide(
    challenger: np.ndarray,
    champion: np.ndarray,
    persistence: np.ndarray,
    alpha: float = ALPHA,
    horizons: tuple[int, ...] = HORIZONS,
    loss: str = "mae",
    bands: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[HorizonDecision]:
    """Per-horizon decisions from (days, horizons) per-day losses on the same complete days.

    ``bands``, when the challenger brings its own intervals: (challenger, champion) per-day interval
    scores, the same shape; a horizon whose bands are worse at level ``alpha`` is not promoted.
    """
    days = len(challenger)
    level = alpha / len(horizons)
    vs_champion = [paired_test(champion[:, j] - challenger[:, j], level) for j in range(len(horizons))]
    vs_persistence = [paired_test(persistence[:, j] - challenger[:, j], level) for j in range(len(horizons))]
    joint = [max(a.p, b.p) for a, b in zip(vs_champion, vs_persistence, strict=True)]
    passed, adjusted = holm(joint, alpha)
    out = []
    for j, h in enumerate(horizons):
        improvement, mde = _relative(vs_champion[j], champion[:, j])
        band_gain, p_worse = NAN, NAN
        if bands is not None:
            worse = paired_test(bands[0][:, j] - bands[1][:, j], alpha)
            band_gain, p_worse = -_relative(worse, bands[1][:, j])[0], worse.p
        blocked_by_bands = p_worse < alpha
        promote = days >= MIN_DAYS and passed[j] and not blocked_by_bands
        evidence = (
            f"{loss} {_versus(improvement)} the champion (p={vs_champion[j].p:.3g}), "
            f"p={vs_persistence[j].p:.3g} vs persistence, Holm p={adjusted[j]:.3g}; "
            f"MDE {_pct(mde)} at {POWER:.0%} power over {days} complete days"
        )
        if promote:
            reason = f"h={h}: beats champion and persistence: {evidence}"
        elif days < MIN_DAYS:
            reason = f"h={h}: not promoted: only {days} complete days (needs {MIN_DAYS}); {evidence}"
        elif blocked_by_bands:
            reason = f"h={h}: not promoted: its bands are worse (interval score {_pct(band_gain)}, p={p_worse:.3g}); {evidence}"
        else:
            reason = f"h={h}: not promoted: not better at family-wise p<{alpha}; {evidence}"
        out.append(
            HorizonDecision(
                h,
                promote,
                vs_champion[j].p,
                vs_persistence[j].p,
                reason,
                loss,
                days,
                improvement,
                adjusted[j],
                mde,
                POWER,
                band_gain,
                p_worse,
            )
        )
    return out


def recheck(
    champion: np.ndarray,
    persistence: np.ndarray,
    served: list[int],
    alpha: float = ALPHA,
    horizons: tuple[int, ...] = HORIZONS,
    loss: str = "mae",
) -> list[HorizonDecision]:
    """Re-run the persistence half of the gate for the horizons a champion LSTM serves.

    A champion keeps a horizon only while it still beats persistence on the latest window (Holm over
    the horizons it serves); where it no longer does, the horizon goes back to persistence
    (``promote`` is False: demoted).
    """
    columns = [j for j, h in enumerate(horizons) if h in served]
    if not columns:
        return []
    days = len(champion)
    level = alpha / len(columns)
    tests = [paired_test(persistence[:, j] - champion[:, j], level) for j in columns]
    passed, adjusted = holm([t.p for t in tests], alpha)
    out = []
    for k, j in enumerate(columns):
        h, test = horizons[j], tests[k]
        improvement, mde = _relative(test, persistence[:, j])
        kept = days >= MIN_DAYS and passed[k]
        evidence = (
            f"{loss} {_pct(improvement)} better than persistence (p={test.p:.3g}, Holm p={adjusted[k]:.3g}); "
            f"MDE {_pct(mde)} at {POWER:.0%} power over {days} complete days"
        )
        if kept:
            reason = f"h={h}: champion kept, still beats persistence: {evidence}"
        else:
            reason = (
                f"h={h}: champion demoted to persistence, not better than it on the latest window: {evidence}"
            )
        out.append(HorizonDecision(h, kept, NAN, test.p, reason, loss, days, improvement, adjusted[k], mde))
    return out
