"""Top of book where no quotes were recorded: the forming price plus a calibrated spread.

The spread (relative to the mid) and the best-level sizes are drawn from the recorded BTCUSDT
quotes sample, so the replay's book has the sample's mix of one-tick and wide spreads. Sizes scale
with the pair's typical minute volume. Draws are seeded by pair and second, so a book is the same
over REST and the socket and across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryptocast.exchange.recordings import QUOTES_SAMPLE, load_quotes

# Median BTCUSDT 1-minute volume (BTC) in the bundled March 2025 recording; the sample's sizes are
# expressed relative to it and rescaled to each pair's own median minute volume.
REFERENCE_MINUTE_VOLUME = 9.845


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float


class SpreadModel:
    """Empirical distributions of relative spread and sizes, sampled deterministically."""

    def __init__(self, path: Path = QUOTES_SAMPLE) -> None:
        quotes = load_quotes(path)
        mid = (quotes["bid"] + quotes["ask"]) / 2
        self.relative_spread = ((quotes["ask"] - quotes["bid"]) / mid).to_numpy()
        self.bid_size = (quotes["bid_size"] / REFERENCE_MINUTE_VOLUME).to_numpy()
        self.ask_size = (quotes["ask_size"] / REFERENCE_MINUTE_VOLUME).to_numpy()

    def quote(self, seed: int, price: float, tick: float, lot: float, minute_volume: float) -> Quote:
        """A book around the last trade ``price``: bid at or below it, ask at least a tick above."""
        rng = np.random.default_rng(seed)
        i, j, k = rng.integers(0, len(self.relative_spread), size=3)
        ticks = max(1, round(price * self.relative_spread[i] / tick))
        below = int(rng.integers(0, ticks)) if ticks > 1 else 0
        bid = max(tick, round(price / tick - below) * tick)
        ask = bid + ticks * tick
        return Quote(
            bid=bid,
            bid_qty=max(lot, round(self.bid_size[j] * minute_volume / lot) * lot),
            ask=ask,
            ask_qty=max(lot, round(self.ask_size[k] * minute_volume / lot) * lot),
        )
