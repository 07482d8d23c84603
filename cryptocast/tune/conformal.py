"""Split-conformal prediction intervals: plain, scaled, and conditional on regime and hour.

Scores are absolute residuals of log returns on a calibration span the model never trained on,
divided by a scale (:mod:`cryptocast.tune.volatility`); the interval at level a is the point ± scale
× the ceil((n+1)a)/n empirical quantile of the scores. One pooled quantile guarantees coverage on
average only: if the scale is too small in some regime or hour, those origins under-cover while the
rest over-cover. Group-conditional (Mondrian) calibration takes the quantile within the origin's
cell instead: volatility bins (cut from the scale on the calibration span) × blocks of hours. A cell's
own quantile is noisy (a 95 % quantile of a few hundred overlapping 30-minute scores), so it is shrunk
toward the pooled one, weighing n / (n + ``shrink``) for a cell of n calibration origins.

A :class:`Calibration` carries the scale model it was fitted with and the :class:`Method` that
fitted it, so the daily refit, the walk-forward evaluation and serving compute the same intervals.
Where the method says so, it also carries the state of an online level correction
(:mod:`cryptocast.tune.tracking`) that each band's level follows between refits. The method, the
Mondrian :class:`Cells` and the calibration stay in one module: cells are fitted from a method's
settings with :func:`conformal_quantile`, and a calibration is fitted by its method into its cells
and read back with them, so apart they would import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.dataset import DAY_MS, HORIZONS
from cryptocast.tune.features import FeatureFrame
from cryptocast.tune.tracking import REPLAY_MINUTES, STEP, Tracking
from cryptocast.tune.volatility import (
    HAR,
    HAR_WINDOWS,
    HOURS_PER_DAY,
    RV30,
    HarScale,
    Rv30Scale,
    ScaleModel,
    hour_of,
    scale_from_dict,
)

LEVELS = (0.8, 0.95)
PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class Method:
    """How a calibration is fitted, so a refit repeats it: scale model, cells, and the span it needs."""

    scale: str = HAR  # "plain", "rv30" or "har"
    vol_bins: int = 1  # volatility bins of the Mondrian cells (1: none)
    hour_blocks: int = 24  # equal blocks the UTC day is cut into (1: none)
    shrink: int = 300  # a cell's quantile weighs n / (n + shrink) against the pooled one (n: its origins)
    span_ms: int = 14 * DAY_MS  # calibration origins come from this span before the refit
    folds: int = 2  # a fitted scale's scores come from a fit on the other days' folds (1: in sample)
    recent_ms: int = 0  # the level comes from this newest part of the span only (0: all of it)
    windows: tuple[int, ...] = HAR_WINDOWS  # minutes of the HAR scale's volatility components
    aci_step: float = 0.0  # step of the online level correction (:mod:`~cryptocast.tune.tracking`; 0: none)
    # the HAR scale's shrinkage toward RV30 (:class:`~cryptocast.tune.volatility.HarScale`)
    rv30_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.scale not in (PLAIN, RV30, HAR):
            raise ValueError(f"unknown scale {self.scale!r}")
        if HOURS_PER_DAY % self.hour_blocks:
            raise ValueError("hour_blocks must divide 24")
        if not 0.0 <= self.rv30_weight <= 1.0:
            raise ValueError("rv30_weight must be within [0, 1]")

    @property
    def conditional(self) -> bool:
        return self.vol_bins > 1 or self.hour_blocks > 1


# What the daily refit fits and serving applies (see docs/forecasting.md). Once the online correction
# set the level, in-sample scores scored better than cross-fitted ones at every horizon; widening the
# HAR scale halfway toward RV30 where RV30 reads higher kept the 95 % bands from lagging a crash.
SERVED = Method(folds=1, aci_step=STEP, rv30_weight=0.5)
LEGACY_SCALED = Method(RV30, hour_blocks=1, span_ms=2 * DAY_MS)  # RV30 split conformal, pooled
LEGACY_PLAIN = Method(PLAIN, hour_blocks=1, span_ms=2 * DAY_MS)


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """The ceil((n+1)·level)-th smallest score per column (the largest when n is small)."""
    n = len(scores)
    rank = min(int(np.ceil((n + 1) * level)), n)
    return np.partition(scores, rank - 1, axis=0)[rank - 1]


@dataclass(frozen=True, slots=True)
class Cells:
    """Mondrian cells: volatility bin × hour block, with a quantile per cell, level and horizon."""

    vol_edges: np.ndarray  # (vol_bins - 1, horizons): inner bin edges of the scale
    hour_blocks: int
    quantiles: dict[float, np.ndarray]  # (cells, horizons), pooled where a cell was too small

    def of(self, scale: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """(origins, horizons) cell index of each origin's scale and UTC hour."""
        bins = np.stack(
            [np.searchsorted(self.vol_edges[:, j], scale[:, j]) for j in range(scale.shape[1])], axis=1
        )
        block = (hour * self.hour_blocks // HOURS_PER_DAY)[:, None]
        return bins * self.hour_blocks + block

    @classmethod
    def fit(
        cls,
        scores: np.ndarray,
        scale: np.ndarray,
        hour: np.ndarray,
        method: Method,
        pooled: dict[float, np.ndarray],
    ) -> Cells:
        probs = np.arange(1, method.vol_bins) / method.vol_bins
        edges = np.quantile(scale, probs, axis=0).reshape(len(probs), scale.shape[1])
        cells = cls(edges, method.hour_blocks, {})
        cell = cells.of(scale, hour)
        n_cells = method.vol_bins * method.hour_blocks
        quantiles = {level: np.tile(q, (n_cells, 1)) for level, q in pooled.items()}
        for j in range(scale.shape[1]):
            for c in range(n_cells):
                mine = scores[cell[:, j] == c, j]
                if len(mine) == 0:
                    continue
                weight = len(mine) / (len(mine) + method.shrink)
                anchor = min(pooled)  # the steadiest quantile sets the cell's factor for every level
                factor = conformal_quantile(mine, anchor) / pooled[anchor][j]
                for level, q in quantiles.items():
                    q[c, j] = pooled[level][j] * factor**weight
        return cls(edges, method.hour_blocks, quantiles)

    def to_dict(self) -> dict:
        return {
            "vol_edges": self.vol_edges.tolist(),
            "hour_blocks": self.hour_blocks,
            "quantiles": {str(k): v.tolist() for k, v in self.quantiles.items()},
        }

    @classmethod
    def from_dict(cls, values: dict) -> Cells:
        quantiles = {float(k): np.asarray(v, dtype=np.float64) for k, v in values["quantiles"].items()}
        edges = np.asarray(values["vol_edges"], dtype=np.float64)
        return cls(
            edges.reshape(-1, next(iter(quantiles.values())).shape[1]), values["hour_blocks"], quantiles
        )


@dataclass(frozen=True, slots=True)
class Calibration:
    """Conformal quantiles per level, one per horizon, in units of the scale (1 when plain)."""

    scaled: bool
    quantiles: dict[float, np.ndarray]  # pooled
    scale_model: ScaleModel = field(default_factory=Rv30Scale)  # what the scale is, when scaled
    cells: Cells | None = None
    method: Method = LEGACY_SCALED
    tracking: Tracking | None = None  # the online level correction's state at the refit

    @classmethod
    def fit(
        cls, residuals: np.ndarray, scale: np.ndarray | None, levels: tuple[float, ...] = LEVELS
    ) -> Calibration:
        """``residuals`` and ``scale`` are (origins, horizons); ``scale=None`` gives plain conformal."""
        scores = np.abs(residuals) / (scale if scale is not None else 1.0)
        if len(scores) == 0:
            raise ValueError("no calibration origins")
        quantiles = {level: conformal_quantile(scores, level) for level in levels}
        return cls(scale is not None, quantiles, method=LEGACY_SCALED if scale is not None else LEGACY_PLAIN)

    @property
    def lookback(self) -> int:
        """Minutes behind an origin, beyond the features' own, that the scale reads (and, with the
        online level correction, the minutes since the refit that it replays)."""
        return self._scale_lookback + (REPLAY_MINUTES if self.tracking is not None else 0)

    @property
    def _scale_lookback(self) -> int:
        return self.scale_model.lookback if self.scaled else 0

    def needed_minutes(self, origin_ms: int) -> int:
        """Candles up to ``origin_ms`` that its intervals need: the scale's lookback and the origin,
        and the minutes since the fit that the online level correction replays (at most
        :attr:`lookback` in all)."""
        replay = 0 if self.tracking is None else (origin_ms - self.tracking.since_ms) // MINUTE_MS + 1
        return self._scale_lookback + 1 + min(max(replay, 0), REPLAY_MINUTES)

    def scale(self, ff: FeatureFrame, idx: np.ndarray, horizons: tuple[int, ...] = HORIZONS) -> np.ndarray:
        if not self.scaled:
            return np.ones((len(idx), len(horizons)))
        return self.scale_model.predict(ff, idx, horizons)

    def half_widths(self, scale: np.ndarray, hour: np.ndarray | None = None) -> dict[float, np.ndarray]:
        """Half-width of each level's interval (log-return units) for origins with this scale (and,
        with cells, these UTC hours)."""
        unit = scale if self.scaled else np.ones_like(scale)
        if self.cells is None or hour is None:
            return {level: unit * q[None, :] for level, q in self.quantiles.items()}
        cell = self.cells.of(scale, hour)
        columns = np.arange(scale.shape[1])[None, :]
        return {level: unit * q[cell, columns] for level, q in self.cells.quantiles.items()}

    def _bands(
        self, ff: FeatureFrame, horizons: tuple[int, ...]
    ) -> Callable[[np.ndarray], dict[float, np.ndarray]]:
        def bands(rows: np.ndarray) -> dict[float, np.ndarray]:
            return self.half_widths(self.scale(ff, rows, horizons), hour_of(ff.open_time[rows]))

        return bands

    def intervals(
        self,
        ff: FeatureFrame,
        idx: np.ndarray,
        horizons: tuple[int, ...] = HORIZONS,
        point: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> dict[float, np.ndarray]:
        """Half-widths at the origins ``idx`` (sorted) of ``ff``: what serving and every evaluation
        apply. ``point(rows)`` is the point forecast the bands are centred on (None: persistence, a
        zero return); the online level correction scores its past bands around it."""
        if self.tracking is None:
            return self._bands(ff, horizons)(idx)
        return self.tracking.apply(
            ff, idx, horizons, self._bands(ff, horizons), point or _persistence(horizons)
        )

    def carried_from(
        self,
        previous: Calibration | None,
        ff: FeatureFrame,
        horizons: tuple[int, ...] = HORIZONS,
        point: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Calibration:
        """This refit with the online level correction continued from ``previous``, the calibration
        served before it: its state advanced over the origins it served up to this fit. Without a
        previous correction (a first fit, another step) the correction starts at 0."""
        if self.tracking is None or previous is None or previous.tracking is None:
            return self
        if previous.tracking.step != self.tracking.step:
            return self
        start = previous.tracking.advance(
            ff,
            self.tracking.since_ms,
            horizons,
            previous._bands(ff, horizons),
            point or _persistence(horizons),
        )
        return replace(self, tracking=replace(self.tracking, start=start))

    def refit(
        self, ff: FeatureFrame, idx: np.ndarray, residuals: np.ndarray, horizons: tuple[int, ...] = HORIZONS
    ) -> Calibration:
        """The same method fitted anew on residuals at ``idx`` (the daily recalibration)."""
        return fit_calibration(self.method, ff, idx, residuals, horizons, tuple(self.quantiles))

    def to_dict(self) -> dict:
        out = {
            "scaled": self.scaled,
            "quantiles": {str(k): v.tolist() for k, v in self.quantiles.items()},
            "method": asdict(self.method),
        }
        if self.scaled:
            out["scale_model"] = self.scale_model.to_dict()
        if self.cells is not None:
            out["cells"] = self.cells.to_dict()
        if self.tracking is not None:
            out["tracking"] = self.tracking.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        """Also reads calibrations stored before scale models (RV30 or plain, two-day span)."""
        quantiles = {float(k): np.asarray(v, dtype=np.float64) for k, v in values["quantiles"].items()}
        scaled = bool(values["scaled"])
        method = (
            _method(values["method"]) if "method" in values else LEGACY_SCALED if scaled else LEGACY_PLAIN
        )
        model = scale_from_dict(values["scale_model"]) if "scale_model" in values else Rv30Scale()
        cells = Cells.from_dict(values["cells"]) if "cells" in values else None
        tracking = Tracking.from_dict(values["tracking"]) if "tracking" in values else None
        return cls(scaled, quantiles, model, cells, method, tracking)


def _persistence(horizons: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    def zero(rows: np.ndarray) -> np.ndarray:
        return np.zeros((len(rows), len(horizons)))

    return zero


def _method(values: dict) -> Method:
    """A stored method (JSON lists back to tuples; records from before ``windows`` get the default)."""
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return Method(**fields)


def fit_calibration(
    method: Method,
    ff: FeatureFrame,
    idx: np.ndarray,
    residuals: np.ndarray,
    horizons: tuple[int, ...] = HORIZONS,
    levels: tuple[float, ...] = LEVELS,
) -> Calibration:
    """Fit ``method`` on the residuals (origins, horizons) at the origins ``idx`` (sorted) of ``ff``."""
    if len(idx) == 0:
        raise ValueError("no calibration origins")
    model: ScaleModel = (
        HarScale.fit(ff, idx, residuals, horizons, method.windows, method.rv30_weight)
        if method.scale == HAR
        else Rv30Scale()
    )
    scaled = method.scale != PLAIN
    scale = model.predict(ff, idx, horizons) if scaled else np.ones(residuals.shape)
    if method.scale == HAR and method.folds > 1:
        scale = _cross_fitted(ff, idx, residuals, horizons, method)
    scores = np.abs(residuals) / scale
    pooled = {level: conformal_quantile(scores, level) for level in levels}
    cells = (
        Cells.fit(scores, scale, hour_of(ff.open_time[idx]), method, pooled) if method.conditional else None
    )
    if method.recent_ms:
        recent = ff.open_time[idx] >= ff.open_time[idx].max() - method.recent_ms
        level_now = {level: conformal_quantile(scores[recent], level) for level in levels}
        if cells is not None:
            cells = Cells(
                cells.vol_edges,
                cells.hour_blocks,
                {
                    level: q * (level_now[level] / pooled[level])[None, :]
                    for level, q in cells.quantiles.items()
                },
            )
        pooled = level_now
    tracking = (
        Tracking.fresh(method.aci_step, int(ff.open_time[idx[-1]]) + MINUTE_MS, levels, len(horizons))
        if method.aci_step
        else None
    )
    return Calibration(scaled, pooled, model, cells, method, tracking)


def _cross_fitted(
    ff: FeatureFrame, idx: np.ndarray, residuals: np.ndarray, horizons: tuple[int, ...], method: Method
) -> np.ndarray:
    """Each origin's scale from a fit on the days of the other folds (days dealt round-robin), so its
    score is out of sample, as a served origin's is: in-sample scores of a fitted scale are too small."""
    fold = (ff.open_time[idx] // DAY_MS) % method.folds
    scale = np.empty(residuals.shape)
    for k in range(method.folds):
        held = fold == k
        if held.all() or not held.any():  # one day's span: nothing to fit on but itself
            return HarScale.fit(ff, idx, residuals, horizons, method.windows, method.rv30_weight).predict(
                ff, idx, horizons
            )
        fitted = HarScale.fit(ff, idx[~held], residuals[~held], horizons, method.windows, method.rv30_weight)
        scale[held] = fitted.predict(ff, idx[held], horizons)
    return scale
