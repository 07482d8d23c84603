"""Query bounds for the data endpoints: defaults, limits and clear refusals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptocast.serve.errors import ApiError

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)  # nothing traded before; keeps date arithmetic in range
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Span:
    default: timedelta  # the window returned when the caller gives no start
    most: timedelta  # the widest window one request may ask for


CANDLES = Span(timedelta(hours=6), timedelta(days=31))
PREDICTIONS = Span(timedelta(hours=1), timedelta(days=7))


def _utc(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise ApiError(422, f"{value.isoformat()} is outside {EARLIEST.year}-{LATEST.year}")
    return value.astimezone(UTC)


def resolve(
    start: datetime | None, end: datetime | None, newest: datetime | None, span: Span
) -> tuple[datetime, datetime]:
    """[start, end): by default the ``span.default`` up to just after the newest stored minute.

    With only ``start``, the window runs ``span.most`` from it (so paging by ``next_start`` works).
    """
    if start is None:
        end = _utc(end) if end is not None else (newest or datetime.now(UTC)) + timedelta(minutes=1)
        start = max(end - span.default, EARLIEST)
    else:
        start = _utc(start)
        end = _utc(end) if end is not None else min(start + span.most, LATEST)
    if start >= end:
        raise ApiError(422, f"start {start.isoformat()} is not before end {end.isoformat()}")
    if end - start > span.most:
        raise ApiError(
            422, f"range of {end - start} is too wide: at most {span.most.days} days per request (use paging)"
        )
    return start, end
