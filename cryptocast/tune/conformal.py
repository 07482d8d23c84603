"""Split-conformal prediction intervals, plain or scaled by recent realised volatility.

Scores are absolute residuals of log returns on a calibration span the model never trained on;
the interval at level a is the point ± the ceil((n+1)a)/n empirical quantile of the scores. Scaled
scores divide the residual by vol(t)·sqrt(h) and multiply back at prediction time, so intervals widen
in volatile regimes and narrow in calm ones instead of being one width for all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = (0.8, 0.95)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Conformal quantiles per level, one per horizon, in units of the scale (1 when plain)."""

    scaled: bool
    quantiles: dict[float, np.ndarray]

    @classmethod
    def fit(
        cls, residuals: np.ndarray, scale: np.ndarray | None, levels: tuple[float, ...] = LEVELS
    ) -> Calibration:
        """``residuals`` and ``scale`` are (origins, horizons); ``scale=None`` gives plain conformal."""
        scores = np.abs(residuals) / (scale if scale is not None else 1.0)
        n = len(scores)
        if n == 0:
            raise ValueError("no calibration origins")
        quantiles = {}
        for level in levels:
            rank = min(int(np.ceil((n + 1) * level)), n)
            quantiles[level] = np.sort(scores, axis=0)[rank - 1]
        return cls(scale is not None, quantiles)

    def half_widths(self, scale: np.ndarray) -> dict[float, np.ndarray]:
        """Half-width of each level's interval (log-return units) for origins with this scale."""
        unit = scale if self.scaled else np.ones_like(scale)
        return {level: unit * q[None, :] for level, q in self.quantiles.items()}

    def to_dict(self) -> dict:
        return {"scaled": self.scaled, "quantiles": {str(k): v.tolist() for k, v in self.quantiles.items()}}

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        return cls(values["scaled"], {float(k): np.asarray(v) for k, v in values["quantiles"].items()})
