"""How much data ``cryptocast evaluate`` needs: to score at all, and to score with power.

With daily calibration (the default, as intervals are served), the intervals of day d are refitted
on the ``calib_ms`` before d (:mod:`cryptocast.tune.walkforward`), so the first ``calib_ms`` of a
file only calibrates. Scored time after it is then needed:

- less than a day is refused: every statistic of the report is per day, and would rest on part of
  one;
- fewer than ``MIN_SPANS.test_ms`` days (five) is scored with a warning: the one-sided test over
  days cannot reach p < 0.05 with fewer (:mod:`cryptocast.tune.history`), so the report's p-values
  cannot show skill and its standard errors rest on a handful of days.

The file's span is checked before anything is scored; the days actually scored (holes and
``--since`` can leave fewer) are checked again on the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptocast.tune.dataset import DAY_MS
from cryptocast.tune.history import MIN_SPANS, days

MIN_SCORED_MS = DAY_MS
POWERED_SCORED_MS = MIN_SPANS.test_ms


class TooShort(ValueError):
    """The data cannot be scored; the message says how much it holds and how much is needed."""


@dataclass(frozen=True, slots=True)
class EvaluationNeeds:
    """``calibration_ms``: the span at the start of the data that only fits intervals (0: fixed ones)."""

    calibration_ms: int

    @property
    def minimum_ms(self) -> int:
        return self.calibration_ms + MIN_SCORED_MS

    @property
    def powered_ms(self) -> int:
        return self.calibration_ms + POWERED_SCORED_MS

    def _spans(self) -> str:
        calibrating = (
            f"the first {days(self.calibration_ms):.0f} fit the daily intervals, "
            if self.calibration_ms
            else ""
        )
        return f"{calibrating}then at least {days(MIN_SCORED_MS):.0f} is scored"

    def check(self, held_ms: int) -> str | None:
        """Refuse (:class:`TooShort`) data shorter than the minimum; a warning when it is short of power."""
        if held_ms < self.minimum_ms:
            raise TooShort(
                f"holds {days(held_ms):.1f} days; evaluate needs at least {days(self.minimum_ms):.1f} "
                f"({self._spans()}), and {days(self.powered_ms):.0f} for tests with power"
            )
        if held_ms < self.powered_ms:
            return (
                f"holds {days(held_ms):.1f} days, under the {days(self.powered_ms):.0f} "
                f"({days(POWERED_SCORED_MS):.0f} scored) that the day-level tests need to reach p < 0.05: "
                "read its skills and p-values as indicative only"
            )
        return None


def scored_warning(scored_days: int) -> str | None:
    """A warning when fewer days were scored than the day-level tests need (holes, ``--since``)."""
    if scored_days < days(POWERED_SCORED_MS):
        return (
            f"scored {scored_days} days, under the {days(POWERED_SCORED_MS):.0f} that the day-level tests need "
            "to reach p < 0.05: read its skills and p-values as indicative only"
        )
    return None
