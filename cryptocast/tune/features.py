"""Features of a pair at minute t, computed from minutes t - LOOKBACK … t only.

Training, evaluation and serving all call :func:`compute`, so the features a model was trained on
and the ones it is served can never disagree. Candles are laid on a complete minute grid first: a
missing minute (exchange hole or unrepaired gap) is a row of NaN, and a feature row is defined only
when all ``LOOKBACK + 1`` minutes behind it are present, so no feature and no window straddles a hole.

Every default feature is a log ratio, a volatility or a calendar angle: scale-free, so a model can be
evaluated on any pair's OHLCV file, and only the six recorded columns are needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import BOOK_COLUMNS, Candles

RETURN_LAGS = (1, 5, 15, 30, 60)
STD_WINDOWS = (5, 15, 60)
MEAN_WINDOWS = (15, 60)
VOLUME_WINDOW = 60
# Realised volatility that scales targets and intervals: RMS of 1-minute log returns.
VOL_WINDOW = 30
VOL_FLOOR = 1e-5  # flat, zero-volume stretches must not give zero-width intervals
LOOKBACK = max(*RETURN_LAGS, *STD_WINDOWS, *MEAN_WINDOWS, VOLUME_WINDOW, VOL_WINDOW)
DAY_MINUTES = 1440
WEEK_MINUTES = 7 * DAY_MINUTES
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
BPS = 1e4

DEFAULT_GROUPS = ("returns", "volume", "shape", "calendar")
OPTIONAL_GROUPS = ("book", "taker", "derived")
GROUPS = DEFAULT_GROUPS + OPTIONAL_GROUPS


class FeatureUnavailable(ValueError):
    """A feature group needs columns the data does not have (or has only as derived values)."""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Which feature groups a model uses; stored with the model so serving computes the same ones."""

    groups: tuple[str, ...] = DEFAULT_GROUPS

    def __post_init__(self) -> None:
        unknown = set(self.groups) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown feature groups {sorted(unknown)}; known: {GROUPS}")
        if "returns" not in self.groups:
            raise ValueError("the 'returns' group is required")

    def to_json(self) -> str:
        return json.dumps(list(self.groups))

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls(tuple(json.loads(text)))


@dataclass(slots=True)
class FeatureFrame:
    """Features on a complete minute grid; rows with any NaN are not usable."""

    open_time: np.ndarray  # int64 ms, every minute from the first candle to the last
    close: np.ndarray  # NaN on missing minutes
    values: np.ndarray  # (minutes, features)
    vol: np.ndarray  # realised volatility per minute (NaN where undefined)
    names: list[str]

    @property
    def usable(self) -> np.ndarray:
        """Rows where every feature and the volatility are defined."""
        return np.isfinite(self.values).all(axis=1) & np.isfinite(self.vol)


def on_grid(candles: Candles) -> pd.DataFrame:
    """Reindex to one row per minute; a missing minute becomes a row of NaN."""
    frame = candles.frame.set_index("open_time_ms")
    if frame.empty:
        return frame
    first, last = int(frame.index[0]), int(frame.index[-1])
    return frame.reindex(np.arange(first, last + MINUTE_MS, MINUTE_MS, dtype=np.int64))


def _returns(g: pd.DataFrame, log_close: pd.Series, r1: pd.Series) -> dict[str, pd.Series]:
    out = {f"ret_{k}": log_close - log_close.shift(k) for k in RETURN_LAGS}
    out |= {f"std_{w}": r1.rolling(w, min_periods=w).std(ddof=0) for w in STD_WINDOWS}
    out |= {f"dev_{w}": log_close - log_close.rolling(w, min_periods=w).mean() for w in MEAN_WINDOWS}
    return out


def _volume(g: pd.DataFrame) -> dict[str, pd.Series]:
    log_volume = np.log1p(g["volume"])
    mean = log_volume.rolling(VOLUME_WINDOW, min_periods=VOLUME_WINDOW).mean()
    std = log_volume.rolling(VOLUME_WINDOW, min_periods=VOLUME_WINDOW).std(ddof=0)
    return {"volume_rel": log_volume - mean, "volume_var": std}


def _shape(g: pd.DataFrame) -> dict[str, pd.Series]:
    top = np.maximum(g["open"], g["close"])
    bottom = np.minimum(g["open"], g["close"])
    return {
        "range": np.log(g["high"] / g["low"]),
        "body": np.log(g["close"] / g["open"]),
        "upper_wick": np.log(g["high"] / top),
        "lower_wick": np.log(bottom / g["low"]),
    }


def _calendar(g: pd.DataFrame) -> dict[str, pd.Series]:
    minute = pd.Series(g.index // MINUTE_MS, index=g.index)
    day = 2 * np.pi * (minute % DAY_MINUTES) / DAY_MINUTES
    week = 2 * np.pi * ((minute + EPOCH_WEEKDAY * DAY_MINUTES) % WEEK_MINUTES) / WEEK_MINUTES
    return {
        "day_sin": np.sin(day),
        "day_cos": np.cos(day),
        "week_sin": np.sin(week),
        "week_cos": np.cos(week),
    }


def _book(g: pd.DataFrame) -> dict[str, pd.Series]:
    if not set(BOOK_COLUMNS) <= set(g.columns):
        raise FeatureUnavailable("the 'book' group needs top-of-book rows (bid/ask price and quantity)")
    mid = (g["bid_price"] + g["ask_price"]) / 2
    depth = g["bid_qty"] + g["ask_qty"]
    return {
        "spread_bps": BPS * (g["ask_price"] - g["bid_price"]) / mid,
        "imbalance": (g["bid_qty"] - g["ask_qty"]) / depth.where(depth > 0),
    }


def _recorded(candles: Candles, column: str, spec: FeatureSpec, group: str) -> None:
    if column not in candles.frame.columns:
        raise FeatureUnavailable(f"the '{group}' group needs the '{column}' column")
    if column in candles.derived and "derived" not in spec.groups:
        raise FeatureUnavailable(
            f"'{column}' is derived, not recorded, for this pair; enable the 'derived' group to use it"
        )


def _taker(g: pd.DataFrame) -> dict[str, pd.Series]:
    share = g["taker_buy_base"] / g["volume"].where(g["volume"] > 0)
    return {"taker_share": share.fillna(0.5).where(g["volume"].notna())}


def _derived(g: pd.DataFrame) -> dict[str, pd.Series]:
    trades = g["trades"]
    size = g["volume"] / trades.where(trades > 0)
    return {
        "log_trades": np.log1p(trades),
        "log_trade_size": np.log1p(size.fillna(0.0).where(trades.notna())),
    }


def compute(candles: Candles, spec: FeatureSpec = FeatureSpec()) -> FeatureFrame:
    """Features for every minute; a row is NaN unless its whole lookback is free of missing minutes."""
    g = on_grid(candles)
    log_close = np.log(g["close"])
    r1 = log_close.diff()
    columns: dict[str, pd.Series] = _returns(g, log_close, r1)
    if "volume" in spec.groups:
        columns |= _volume(g)
    if "shape" in spec.groups:
        columns |= _shape(g)
    if "calendar" in spec.groups:
        columns |= _calendar(g)
    if "book" in spec.groups:
        columns |= _book(g)
    if "taker" in spec.groups:
        _recorded(candles, "taker_buy_base", spec, "taker")
        columns |= _taker(g)
    if "derived" in spec.groups:
        _recorded(candles, "trades", spec, "derived")
        columns |= _derived(g)
    complete = g["close"].notna().astype(float).rolling(LOOKBACK + 1, min_periods=LOOKBACK + 1).min() == 1
    values = pd.DataFrame(columns).where(complete, np.nan).to_numpy(np.float64)
    vol = np.sqrt((r1**2).rolling(VOL_WINDOW, min_periods=VOL_WINDOW).mean()).clip(lower=VOL_FLOOR)
    return FeatureFrame(
        open_time=g.index.to_numpy(np.int64),
        close=g["close"].to_numpy(np.float64),
        values=values,
        vol=vol.where(complete, np.nan).to_numpy(np.float64),
        names=list(columns),
    )


@dataclass(frozen=True, slots=True)
class Scaler:
    """Per-feature standardisation, fitted on training rows only and stored with the model."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        finite = values[np.isfinite(values).all(axis=1)]
        if len(finite) == 0:
            raise ValueError("no complete feature rows to fit a scaler on")
        std = finite.std(axis=0)
        return cls(finite.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)
