"""The time range the page shows: a window that follows the newest candle, or a range the viewer picked.

Following live keeps the window's length and slides its end with every new candle; a picked range
stays where it was put. The page keeps the choice in a store, which comes back from the browser, so
it is read back through :func:`from_store` and typed times through :func:`picked`: both refuse what
is malformed, out of bounds, reversed or longer than ``MAX_SPAN`` with a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MINUTE = timedelta(minutes=1)
MAX_SPAN = timedelta(days=7)  # the widest range one view (and one download) covers
MAX_MINUTES = MAX_SPAN // MINUTE
EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)  # nothing traded before
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_TEXT = 40  # characters of a typed time that are read at all
SHOWN = "%Y-%m-%d %H:%M"  # how a time is written into the range inputs (UTC)
TYPED = "YYYY-MM-DD HH:MM"  # the same, as the inputs ask for it


class RangeProblem(ValueError):
    """A range that cannot be shown, with the sentence that says why."""


@dataclass(frozen=True, slots=True)
class View:
    """Following live over ``minutes``, or the fixed range [``start``, ``end``) (UTC, whole minutes)."""

    follow: bool
    minutes: int
    start: datetime | None = None
    end: datetime | None = None

    def window(self, last: datetime) -> tuple[datetime, datetime]:
        """[start, end) on screen when the newest candle opened at ``last``."""
        if self.follow or self.start is None or self.end is None:
            return last - (self.minutes - 1) * MINUTE, last + MINUTE
        return self.start, self.end

    def key(self) -> str:
        """Names the view for the chart's ``uirevision``: a new key is a new chart (the zoom resets)."""
        if self.follow or self.start is None or self.end is None:
            return f"live {self.minutes}"
        return f"{self.start.isoformat()} {self.end.isoformat()}"


def live(minutes: int) -> View:
    return View(follow=True, minutes=minutes)


def fixed(start: datetime, end: datetime) -> View:
    """The range [start, end), checked: in bounds, end after start, at most ``MAX_SPAN``."""
    for when in (start, end):
        if not EARLIEST <= when <= LATEST:
            raise RangeProblem(f"{when.strftime(SHOWN)} is outside {EARLIEST.year}-{LATEST.year}.")
    if end <= start:
        raise RangeProblem(f"The end {end.strftime(SHOWN)} is not after the start {start.strftime(SHOWN)}.")
    if end - start > MAX_SPAN:
        raise RangeProblem(f"The range is {end - start} long: at most {MAX_SPAN.days} days.")
    return View(follow=False, minutes=(end - start) // MINUTE, start=start, end=end)


def parse_time(text: object, what: str) -> datetime:
    """A typed time (``2025-03-08 12:00``, ISO 8601, UTC unless an offset is given) to the minute."""
    if not isinstance(text, str) or not text.strip():
        raise RangeProblem(f"Type the {what} as {TYPED} (UTC).")
    shown = text.strip()[:MAX_TEXT]
    try:
        value = datetime.fromisoformat(shown)
    except ValueError:
        raise RangeProblem(f"'{shown}' is not a time: type the {what} as {TYPED} (UTC).") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(second=0, microsecond=0)


def picked(start_text: object, end_text: object) -> View:
    """The fixed range the viewer typed, or :class:`RangeProblem` saying what is wrong with it."""
    return fixed(parse_time(start_text, "start"), parse_time(end_text, "end"))


def shown(when: datetime) -> str:
    """A time as the range inputs show it."""
    return when.astimezone(UTC).strftime(SHOWN)


def to_store(view: View) -> dict:
    return {
        "follow": view.follow,
        "minutes": view.minutes,
        "start": view.start.isoformat() if view.start else None,
        "end": view.end.isoformat() if view.end else None,
    }


def from_store(value: object, default: View) -> View:
    """The view the page stored, checked again (it comes back from the browser); ``default`` when it
    is not one."""
    if not isinstance(value, dict):
        return default
    minutes = value.get("minutes")
    if value.get("follow") is True:
        if isinstance(minutes, int) and not isinstance(minutes, bool) and 1 <= minutes <= MAX_MINUTES:
            return live(minutes)
        return default
    try:
        return fixed(_stored_time(value.get("start")), _stored_time(value.get("end")))
    except RangeProblem:
        return default


def _stored_time(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise RangeProblem("not a stored time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise RangeProblem("not a stored time") from None
    if when.tzinfo is None:
        raise RangeProblem("a stored time names its offset")
    return when.astimezone(UTC)
