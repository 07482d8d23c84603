"""The promotion gate, per horizon: a challenger serves a horizon only on evidence, not on a raw difference.

On the latest walk-forward window the challenger's per-day MAE must beat both what the pair serves
now at that horizon (its champion) and persistence of close(t), each by a one-sided sign-flip test
at level ``ALPHA``. Where it does not, the baseline keeps (or the champion keeps) the horizon. The
champion is held to the same standard at every retrain: a horizon where it no longer beats
persistence on the latest window is demoted back to persistence (:func:`recheck`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cryptocast.tune.dataset import HORIZONS
from cryptocast.tune.stats import one_sided_p

ALPHA = 0.05


@dataclass(frozen=True, slots=True)
class HorizonDecision:
    horizon: int
    promote: bool
    p_vs_champion: float
    p_vs_persistence: float
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def decide(
    challenger: np.ndarray,
    champion: np.ndarray,
    persistence: np.ndarray,
    alpha: float = ALPHA,
    horizons: tuple[int, ...] = HORIZONS,
) -> list[HorizonDecision]:
    """Per-horizon decisions from (days, horizons) MAE arrays computed on the same days."""
    out = []
    for j, h in enumerate(horizons):
        p_champ = one_sided_p(champion[:, j] - challenger[:, j])
        p_pers = one_sided_p(persistence[:, j] - challenger[:, j])
        promote = p_champ < alpha and p_pers < alpha
        if promote:
            reason = f"h={h}: beats champion (p={p_champ:.3g}) and persistence (p={p_pers:.3g})"
        else:
            lost = [name for name, p in (("champion", p_champ), ("persistence", p_pers)) if p >= alpha]
            reason = (
                f"h={h}: not better than {' and '.join(lost)} at p<{alpha} "
                f"(p={p_champ:.3g} vs champion, {p_pers:.3g} vs persistence, {len(challenger)} days)"
            )
        out.append(HorizonDecision(h, promote, p_champ, p_pers, reason))
    return out


def recheck(
    champion: np.ndarray,
    persistence: np.ndarray,
    served: list[int],
    alpha: float = ALPHA,
    horizons: tuple[int, ...] = HORIZONS,
) -> list[HorizonDecision]:
    """Re-run the persistence half of the gate for the horizons a champion LSTM serves.

    A champion keeps a horizon only while it still beats persistence on the latest window; where it
    no longer does, the horizon goes back to persistence (``promote`` is False: demoted).
    """
    out = []
    for j, h in enumerate(horizons):
        if h not in served:
            continue
        p = one_sided_p(persistence[:, j] - champion[:, j])
        if p < alpha:
            reason = f"h={h}: champion kept, still beats persistence (p={p:.3g})"
        else:
            reason = (
                f"h={h}: champion demoted to persistence, not better than it on the latest window "
                f"at p<{alpha} (p={p:.3g}, {len(champion)} days)"
            )
        out.append(HorizonDecision(h, p < alpha, float("nan"), p, reason))
    return out
