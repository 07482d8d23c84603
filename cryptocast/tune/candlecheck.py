"""What a user's candle file must hold to be scored, and the report of what was found in it.

Scores are only as honest as the minutes under them, so the numbers read from a file
(:mod:`cryptocast.tune.candlefile`) are checked strictly, and the report says what was done instead
of quietly mending the data:

- a file that cannot be used ends in one :class:`CandleFileError` line that names the file, the row
  (its line, in a CSV) and the column;
- a minute repeated with identical values is merged and counted; a minute repeated with different
  values is refused, since the file cannot say which copy is right;
- rows out of order are sorted by open time and counted;
- rows off the 1-minute grid are refused: they are not 1-minute candles, and moving them would
  invent a minute;
- holes are kept as holes and counted (no forecast window or target spans one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import OHLCV
from cryptocast.tune.dataset import DAY_MS

PRICES = ("open", "high", "low", "close")
Where = Callable[[int], str]  # how the file names its i-th data row ("line 7", "row 7")


class CandleFileError(ValueError):
    """The file cannot be scored; the one-line message names the file, the row and the column."""


@dataclass(frozen=True, slots=True)
class FileReport:
    """What the reader found in a file and what it did about it."""

    name: str
    layout: str
    rows: int  # data rows read
    first_ms: int
    last_ms: int
    merged_repeats: int  # rows that repeated an earlier minute exactly, merged into it
    out_of_order: int  # rows that opened before the row above them
    holes: int
    missing_minutes: int
    largest_hole: tuple[int, int] | None  # (first missing minute in ms, minutes missing)
    notes: tuple[str, ...] = ()

    @property
    def minutes(self) -> int:
        return self.rows - self.merged_repeats

    @property
    def held_ms(self) -> int:
        """The span the file covers, from its first minute to the end of its last."""
        return self.last_ms + MINUTE_MS - self.first_ms

    def lines(self) -> list[str]:
        """The report as printed: one line per finding, each with what was done about it."""
        days = self.held_ms / DAY_MS
        out = [
            f"{self.name} ({self.layout}): {self.rows:,} rows, {self.minutes:,} minutes from "
            f"{utc_minute(self.first_ms)} to {utc_minute(self.last_ms)} UTC ({days:.1f} days)",
            "repeated minutes: none"
            if not self.merged_repeats
            else f"repeated minutes: {self.merged_repeats:,} rows repeated an earlier minute with identical values "
            "and were merged (a minute repeated with different values is refused)",
            "order: ascending"
            if not self.out_of_order
            else f"order: {self.out_of_order:,} rows opened before the row above them; sorted by open time",
        ]
        if self.largest_hole is None:
            out.append("holes: none")
        else:
            start, length = self.largest_hole
            out.append(
                f"holes: {self.holes:,}, {self.missing_minutes:,} minutes missing, the largest {length:,} minutes "
                f"from {utc_minute(start)} UTC; kept as holes (no forecast window or target spans one)"
            )
        return out + list(self.notes)

    def to_dict(self) -> dict:
        return {
            "file": self.name,
            "layout": self.layout,
            "rows": self.rows,
            "minutes": self.minutes,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "days": self.held_ms / DAY_MS,
            "merged_repeats": self.merged_repeats,
            "out_of_order": self.out_of_order,
            "holes": self.holes,
            "missing_minutes": self.missing_minutes,
            "largest_hole_minutes": self.largest_hole[1] if self.largest_hole else 0,
            "notes": list(self.notes),
        }


def checked(
    times: np.ndarray,
    values: dict[str, np.ndarray],
    where: Where,
    name: str,
    layout: str,
    notes: tuple[str, ...],
) -> tuple[np.ndarray, dict[str, np.ndarray], FileReport]:
    """The file's candles sorted and with identical repeats merged, and the report; a file that fails
    a check is refused with :class:`CandleFileError`."""
    rows = len(times)
    _check_prices(values, where, name)
    _check_grid(times, where, name)
    order = np.argsort(times, kind="stable")
    out_of_order = int(np.count_nonzero(np.diff(times) < 0))
    times, values = times[order], {c: v[order] for c, v in values.items()}
    keep = _merge_repeats(times, values, order, where, name)
    times, values = times[keep], {c: v[keep] for c, v in values.items()}
    steps = np.diff(times) // MINUTE_MS
    _check_interval(steps, name)
    holes = np.flatnonzero(steps > 1)
    largest = None
    if len(holes):
        at = holes[np.argmax(steps[holes])]
        largest = (int(times[at]) + MINUTE_MS, int(steps[at]) - 1)
    report = FileReport(
        name=name,
        layout=layout,
        rows=rows,
        first_ms=int(times[0]),
        last_ms=int(times[-1]),
        merged_repeats=rows - len(times),
        out_of_order=out_of_order,
        holes=len(holes),
        missing_minutes=int((steps[holes] - 1).sum()),
        largest_hole=largest,
        notes=notes,
    )
    return times, values, report


def utc_minute(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M}"


def first_hit(mask: np.ndarray) -> tuple[int, str]:
    """Index of the first True, and how many more there are, as words."""
    hits = np.flatnonzero(mask)
    more = f" ({len(hits) - 1:,} more rows like it)" if len(hits) > 1 else ""
    return int(hits[0]), more


def _check_prices(values: dict[str, np.ndarray], where: Where, name: str) -> None:
    """Positive prices, non-negative volume, and open and close within the low–high range."""
    for column in PRICES:
        bad = values[column] <= 0
        if bad.any():
            i, more = first_hit(bad)
            raise CandleFileError(
                f"{name} {where(i)}: {column} is {values[column][i]:g}; prices must be positive{more}"
            )
    bad = values["volume"] < 0
    if bad.any():
        i, more = first_hit(bad)
        raise CandleFileError(
            f"{name} {where(i)}: volume is {values['volume'][i]:g}; it cannot be negative{more}"
        )
    high, low = values["high"], values["low"]
    bad = high < low
    if bad.any():
        i, more = first_hit(bad)
        raise CandleFileError(f"{name} {where(i)}: high {high[i]:g} is below low {low[i]:g}{more}")
    for column in ("open", "close"):
        bad = (values[column] < low) | (values[column] > high)
        if bad.any():
            i, more = first_hit(bad)
            raise CandleFileError(
                f"{name} {where(i)}: {column} {values[column][i]:g} is outside low–high [{low[i]:g}, {high[i]:g}]{more}"
            )


def _check_grid(times: np.ndarray, where: Where, name: str) -> None:
    off = times % MINUTE_MS != 0
    if off.any():
        i, more = first_hit(off)
        seconds = f"{datetime.fromtimestamp(times[i] // 1000, UTC):%Y-%m-%d %H:%M:%S}.{times[i] % 1000:03d}"
        raise CandleFileError(
            f"{name} {where(i)}: open time {seconds} UTC is off the 1-minute grid (1-minute candles open on the "
            f"minute){more}"
        )


def _merge_repeats(
    times: np.ndarray,
    values: dict[str, np.ndarray],
    order: np.ndarray,
    where: Where,
    name: str,
) -> np.ndarray:
    """Rows to keep of the sorted candles: a repeat with identical values goes, one that differs is refused."""
    stacked = np.stack([values[c] for c in OHLCV], axis=1)
    repeat = times[1:] == times[:-1]
    differs = repeat & (stacked[1:] != stacked[:-1]).any(axis=1)
    if differs.any():
        i, more = first_hit(differs)
        first, second = sorted((int(order[i]), int(order[i + 1])))
        raise CandleFileError(
            f"{name}: the minute {utc_minute(int(times[i]))} UTC is on {where(first)} and {where(second)} with different "
            f"values; remove the wrong copy{more.replace('rows', 'minutes')}"
        )
    return np.concatenate([[True], ~repeat])


def _check_interval(steps: np.ndarray, name: str) -> None:
    """1-minute candles: a file whose rows are mostly n > 1 minutes apart holds n-minute candles."""
    if len(steps) == 0:
        return
    values, counts = np.unique(steps, return_counts=True)
    usual = int(values[np.argmax(counts)])
    if usual > 1:
        raise CandleFileError(
            f"{name}: its rows are mostly {usual} minutes apart, so these are {usual}-minute candles; "
            "evaluate scores 1-minute candles"
        )
