"""Conformal intervals normalised by the LSTM's own forecast of the spread.

A distributional LSTM (:mod:`cryptocast.tune.heads`) forecasts, per origin and horizon, how large
the move will be. That forecast takes the place of RV30 or HAR as the conformal scale: scores are
``|y − ŷ| / scale`` on a calibration span the network never trained on, and the band is
``ŷ ± scale · quantile``. Everything else is the conformal code the baseline uses (pooled or
cell-conditional quantiles, the daily refit), so the bands of the three scales compare like for like.

The scale lives in the network, not in the calibration, so :class:`NetworkScale` holds a callable
that the predictor binds to itself when it is built or loaded; the stored calibration records only
that its scale is the network's. A calibration's :class:`~cryptocast.tune.conformal.Method` still
says how it is fitted (span, cells); its ``scale`` field does not apply here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cryptocast.tune.conformal import LEGACY_SCALED, LEVELS, Calibration, Cells, Method, conformal_quantile
from cryptocast.tune.dataset import HORIZONS
from cryptocast.tune.features import FeatureFrame
from cryptocast.tune.volatility import ScaleModel, hour_of

NETWORK = "network"
# The LSTM's calibration span is carved from its training history: two days, too short for hour
# cells, so the quantiles are pooled (the span and cells of RV30 split conformal).
NETWORK_METHOD = LEGACY_SCALED

Forecast = Callable[[FeatureFrame, np.ndarray], np.ndarray]  # (origins, horizons) scale in log-return units


@dataclass(frozen=True, slots=True)
class NetworkScale:
    """A :class:`~cryptocast.tune.volatility.ScaleModel` whose scale is the network's forecast."""

    forecast: Forecast | None = None  # bound by the predictor that owns the network
    kind: str = NETWORK
    lookback: int = 0  # the network reads its own window, which the predictor already asks for

    def predict(self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
        if self.forecast is None:
            raise RuntimeError("the network scale is not bound to a network")
        return self.forecast(ff, idx)

    def to_dict(self) -> dict:
        return {"kind": self.kind}


@dataclass(frozen=True, slots=True)
class NetworkCalibration(Calibration):
    """A conformal calibration on the network's scale; its daily refit keeps that scale."""

    def refit(
        self, ff: FeatureFrame, idx: np.ndarray, residuals: np.ndarray, horizons: tuple[int, ...] = HORIZONS
    ) -> NetworkCalibration:
        return fit_network_calibration(
            self.scale_model, ff, idx, residuals, horizons, self.method, tuple(self.quantiles)
        )

    def bound(self, forecast: Forecast) -> NetworkCalibration:
        """The same quantiles on ``forecast``'s scale (a loaded or rebuilt predictor binds itself)."""
        return NetworkCalibration(
            self.scaled, self.quantiles, NetworkScale(forecast), self.cells, self.method
        )


def fit_network_calibration(
    scale_model: ScaleModel,
    ff: FeatureFrame,
    idx: np.ndarray,
    residuals: np.ndarray,
    horizons: tuple[int, ...] = HORIZONS,
    method: Method = NETWORK_METHOD,
    levels: tuple[float, ...] = LEVELS,
) -> NetworkCalibration:
    """Split conformal on ``residuals`` (origins, horizons) at ``idx``, scored on the network's scale."""
    if len(idx) == 0:
        raise ValueError("no calibration origins")
    scale = scale_model.predict(ff, idx, horizons)
    scores = np.abs(residuals) / scale
    pooled = {level: conformal_quantile(scores, level) for level in levels}
    cells = (
        Cells.fit(scores, scale, hour_of(ff.open_time[idx]), method, pooled) if method.conditional else None
    )
    return NetworkCalibration(True, pooled, scale_model, cells, method)


def calibration_from_dict(values: dict) -> Calibration:
    """A stored calibration; one on the network's scale comes back unbound (its predictor binds it)."""
    if values.get("scale_model", {}).get("kind") != NETWORK:
        return Calibration.from_dict(values)
    rest = Calibration.from_dict({k: v for k, v in values.items() if k != "scale_model"})
    return NetworkCalibration(rest.scaled, rest.quantiles, NetworkScale(), rest.cells, rest.method)
