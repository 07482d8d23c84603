"""A deterministic intra-minute price and volume path for a recorded 1-minute candle.

Recordings only hold each minute's OHLCV. To serve a forming candle (and a top of book) at any
instant, each minute gets a path on a one-second grid, seeded by pair and minute so that every
client, every restart and REST and websocket see the same path. The path starts at the open,
touches the high and the low, ends at the close and never leaves [low, high]; volume accrues along
it and reaches the recorded volume exactly at the close.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

STEPS = 60  # one point per second; point 60 is the close
STEP_MS = 1_000
NOISE_OF_RANGE = 0.18  # bridge noise, as a fraction of the minute's high-low range
VOLUME_SHAPE = 0.7  # gamma shape of per-second volume: bursty like real trading
TREND_BIAS = 0.3  # how much an up-minute prefers low-then-high


@dataclass(frozen=True, slots=True)
class MinutePath:
    """price[k] and cumulative volume[k] at k seconds into the minute (k = 0..60)."""

    price: np.ndarray
    volume: np.ndarray

    def high(self, k: int) -> float:
        return float(self.price[: k + 1].max())

    def low(self, k: int) -> float:
        return float(self.price[: k + 1].min())


def seed_for(symbol: str, recorded_open_ms: int) -> int:
    return zlib.crc32(symbol.encode()) * 1_000_003 + recorded_open_ms // STEP_MS


def _snap(values: np.ndarray, step: float) -> np.ndarray:
    return np.rint(values / step) * step


def minute_path(
    seed: int, o: float, h: float, lo: float, c: float, v: float, tick: float, lot: float
) -> MinutePath:
    rng = np.random.default_rng(seed)
    price = np.full(STEPS + 1, o)
    if h > lo:
        i1, i2 = np.sort(rng.choice(np.arange(1, STEPS), size=2, replace=False))
        p_high_first = 0.5 - TREND_BIAS * np.sign(c - o)
        first, second = (h, lo) if rng.random() < p_high_first else (lo, h)
        knots_t = np.array([0, i1, i2, STEPS])
        knots_p = np.array([o, first, second, c])
        grid = np.arange(STEPS + 1)
        line = np.interp(grid, knots_t, knots_p)
        noise = np.cumsum(rng.normal(0.0, NOISE_OF_RANGE * (h - lo) / np.sqrt(STEPS), STEPS + 1))
        bridge = noise - np.interp(grid, knots_t, noise[knots_t])  # zero at every knot
        price = np.clip(_snap(line + bridge, tick), lo, h)
        price[i1], price[i2] = first, second
    price[0], price[STEPS] = o, c
    volume = np.zeros(STEPS + 1)
    if v > 0:
        weights = rng.gamma(VOLUME_SHAPE, size=STEPS)
        volume[1:] = np.minimum(np.floor(np.cumsum(weights) / weights.sum() * v / lot) * lot, v)
        volume[STEPS] = v
    return MinutePath(price=price, volume=volume)
