"""How much history a training needs, and how its spans are cut from the history a pair has.

A training carves, from the end of its data, a test window (the gate's evidence), a calibration
span and a validation span; training gets the rest. With less history than the preferred spans
need, the spans shrink toward their minimums, in a fixed order: the test window is filled first
(the gate's power comes from its days), then calibration, then validation, and whatever is left
trains. Below the sum of the minimums there is no honest training: :func:`fit_spans` says how many
more days are needed instead of training on too little.

The preferred test window is 28 days, the shortest with which the gate sees a 2–3 % gain in
interval score with 80 % power; below it the gate states a larger minimum detectable effect. The
minimum is five days because the gate promotes nothing on fewer complete days
(:data:`cryptocast.tune.gate.MIN_DAYS`: its t-test would have too few degrees of freedom).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptocast.tune.dataset import DAY_MS, SplitSpans

MIN_SPANS = SplitSpans(val_ms=DAY_MS, calib_ms=DAY_MS, test_ms=5 * DAY_MS)
MIN_TRAIN_MS = 3 * DAY_MS


class NotEnoughHistory(ValueError):
    """The pair has less history than a training needs; the message says how much more."""

    def __init__(self, have_ms: int, need_ms: int) -> None:
        self.have_ms, self.need_ms = have_ms, need_ms
        super().__init__(
            f"needs {days(need_ms - have_ms):.1f} more days of history "
            f"(has {days(have_ms):.1f}, a training needs at least {days(need_ms):.1f})"
        )

    @property
    def missing_days(self) -> float:
        return days(self.need_ms - self.have_ms)


def days(ms: int | float) -> float:
    return ms / DAY_MS


@dataclass(frozen=True, slots=True)
class HistoryNeeds:
    """Preferred and minimum spans; the minimum history is the minimum spans plus ``min_train_ms``."""

    preferred: SplitSpans = field(default_factory=SplitSpans)
    minimum: SplitSpans = MIN_SPANS
    min_train_ms: int = MIN_TRAIN_MS

    @classmethod
    def fixed(cls, spans: SplitSpans, min_train_ms: int) -> HistoryNeeds:
        """Exactly these spans, never shrunk (tests and benchmarks on short recordings)."""
        return cls(spans, spans, min_train_ms)

    @property
    def min_history_ms(self) -> int:
        return self.minimum.val_ms + self.minimum.calib_ms + self.minimum.test_ms + self.min_train_ms

    def fit_spans(self, history_ms: int) -> SplitSpans:
        """The spans for ``history_ms`` of data, or :class:`NotEnoughHistory`."""
        if history_ms < self.min_history_ms:
            raise NotEnoughHistory(history_ms, self.min_history_ms)
        spare = history_ms - self.min_history_ms
        spans = {}
        for name in ("test_ms", "calib_ms", "val_ms"):  # the gate's evidence first
            low, high = (
                getattr(self.minimum, name),
                max(getattr(self.preferred, name), getattr(self.minimum, name)),
            )
            extra = min(spare, high - low)
            spans[name] = low + extra
            spare -= extra
        return SplitSpans(**spans)

    def missing_ms(self, history_ms: int) -> int:
        """How much more history a training needs (0 when it has enough)."""
        return max(0, self.min_history_ms - history_ms)
