"""The replay's exchange clock and its timeline (epoch and per-recording shifts).

One exchange clock serves every pair: ``exchange_now = exchange_start + (wall_now - wall_start) × speed``.
Each recording period is shifted by a whole number of weeks (weekday and time of day stay true) so
that the exchange's "now" at the start lies ``history`` (up to a week more) after the period's
first bar: history to backfill, live data still to come. The timeline is stored in
``<data_dir>/replay/epoch.json`` and reused, so a restart continues the same timeline and a candle
keeps its open time; changing the speed re-anchors the clock at the current exchange time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

WEEK_MS = 7 * 24 * 3_600_000
DAY_MS = 24 * 3_600_000
DEFAULT_HISTORY_MS = 3 * DAY_MS
# Recordings whose first bars lie within this span of each other form one period (one shift).
PERIOD_SPAN_MS = WEEK_MS
EPOCH_FILE = "epoch.json"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class ReplayClock:
    """Maps wall time to exchange time; ``wall`` is injectable so tests can drive it."""

    wall_start_ms: int
    exchange_start_ms: int
    speed: float
    wall: Callable[[], int] = field(default=wall_ms, repr=False, compare=False)

    def now(self) -> int:
        return self.exchange_at(self.wall())

    def exchange_at(self, wall_time_ms: int) -> int:
        return self.exchange_start_ms + int((wall_time_ms - self.wall_start_ms) * self.speed)

    def wall_at(self, exchange_ms: int) -> float:
        """Wall time (ms, fractional) at which the exchange clock reads ``exchange_ms``."""
        return self.wall_start_ms + (exchange_ms - self.exchange_start_ms) / self.speed

    def wall_seconds(self, exchange_span_ms: float) -> float:
        """How many wall seconds an exchange-time span takes at this speed."""
        return exchange_span_ms / self.speed / 1000.0


@dataclass(slots=True)
class Timeline:
    """The persisted epoch: clock anchor, speed, history and one shift per recording period."""

    wall_start_ms: int
    exchange_start_ms: int
    speed: float
    history_ms: int
    shifts: dict[str, int]  # period key (first bar of the period, ms, as text) → shift (ms)

    def clock(self, wall: Callable[[], int] = wall_ms) -> ReplayClock:
        return ReplayClock(self.wall_start_ms, self.exchange_start_ms, self.speed, wall)

    def shift_for(self, period_key: str) -> int:
        return self.shifts[period_key]

    def add_periods(self, period_starts: Iterable[int], exchange_now: int) -> None:
        """Shift every new period so that ``exchange_now`` lies ``history`` (+ < 1 week) after it."""
        for start in period_starts:
            key = str(start)
            if key not in self.shifts:
                self.shifts[key] = ((exchange_now - self.history_ms - start) // WEEK_MS) * WEEK_MS

    def respeed(self, speed: float, wall_now: int) -> None:
        """Change speed without a jump: re-anchor at the current exchange time."""
        if speed != self.speed:
            self.exchange_start_ms = self.clock().exchange_at(wall_now)
            self.wall_start_ms = wall_now
            self.speed = speed

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Timeline:
        return cls(**json.loads(path.read_text()))


def period_starts(first_bars: Iterable[int]) -> dict[int, int]:
    """Group first-bar times into periods: each time → the first bar of its period."""
    mapping: dict[int, int] = {}
    period = None
    for start in sorted(set(first_bars)):
        if period is None or start - period >= PERIOD_SPAN_MS:
            period = start
        mapping[start] = period
    return mapping


def open_timeline(
    first_bars: Iterable[int],
    *,
    speed: float,
    history_ms: int = DEFAULT_HISTORY_MS,
    state_dir: Path | None = None,
    reset: bool = False,
    exchange_start_ms: int | None = None,
    wall: Callable[[], int] = wall_ms,
) -> tuple[Timeline, dict[int, int]]:
    """Load the stored timeline (or start one) and make sure every period has a shift.

    A new timeline's exchange clock starts at wall time, or at ``exchange_start_ms`` to place
    "now" exactly (tests and benchmarks). Returns the timeline and the first-bar → period mapping.
    """
    periods = period_starts(first_bars)
    path = state_dir / EPOCH_FILE if state_dir else None
    now = wall()
    if path and path.exists() and not reset:
        timeline = Timeline.load(path)
        timeline.respeed(speed, now)
    else:
        timeline = Timeline(
            now, now if exchange_start_ms is None else exchange_start_ms, speed, history_ms, {}
        )
    timeline.add_periods(periods.values(), timeline.clock(wall).now())
    if path:
        timeline.save(path)
    return timeline, periods
