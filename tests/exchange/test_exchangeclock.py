"""The one exchange clock on a fake wall and a fake ``/time``: rate measured and snapped, extrapolation,
refresh only after ``refresh_s``, no estimate after ``MAX_EXTRAPOLATION_S``."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from cryptocast.exchange import exchangeclock
from cryptocast.exchange.exchangeclock import (
    MAX_EXTRAPOLATION_S,
    MIN_RATE_SPAN_S,
    RATE_SAMPLE_S,
    UNIT_RATE_TOLERANCE,
    ExchangeClock,
)

WALL_START_S = 1_700_000_000.0
EXCHANGE_START_MS = 1_600_000_000_000


class World:
    """Local wall time that moves only when told; an exchange whose clock runs ``speed``× from an offset.

    Asks answer instantly, so a sample's wall time is the wall time of the ask."""

    def __init__(self, speed: float) -> None:
        self.wall_s = WALL_START_S
        self.speed = speed
        self.asks = 0
        self.failing = False
        self.errors: list[int] = []  # exchange ms added to the next answers (jitter), one per ask

    def time(self) -> float:
        return self.wall_s

    async def sleep(self, seconds: float) -> None:
        self.wall_s += seconds

    def exchange_ms(self) -> int:
        return round(EXCHANGE_START_MS + (self.wall_s - WALL_START_S) * 1000 * self.speed)

    async def ask(self) -> int:
        if self.failing:
            raise OSError("exchange away")
        self.asks += 1
        return self.exchange_ms() + (self.errors.pop(0) if self.errors else 0)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(speed=1.0)
    monkeypatch.setattr(exchangeclock, "time", world)
    monkeypatch.setattr(exchangeclock, "asyncio", SimpleNamespace(sleep=world.sleep, Lock=asyncio.Lock))
    return world


async def test_measure_takes_the_rate_from_two_samples_and_snaps_it_near_one(world: World) -> None:
    world.speed = 60.0
    clock = ExchangeClock(world.ask)
    assert not clock.measured
    assert await clock.measure() is clock
    assert world.asks == 2 and world.wall_s == WALL_START_S + RATE_SAMPLE_S
    assert clock.measured and clock.rate == pytest.approx(60.0)
    for speed, rate in (
        (1 + UNIT_RATE_TOLERANCE / 2, 1.0),  # wall speed plus jitter: snapped
        (1 - UNIT_RATE_TOLERANCE / 2, 1.0),
        (1 + 2 * UNIT_RATE_TOLERANCE, 1 + 2 * UNIT_RATE_TOLERANCE),  # a real difference: kept
        (-1.0, 1.0),  # an exchange clock that went back gives no rate
    ):
        world.speed = speed
        assert (await ExchangeClock(world.ask).measure()).rate == pytest.approx(rate)


async def test_a_failed_measure_leaves_the_clock_as_it_was(world: World) -> None:
    world.speed = 60.0
    clock = await ExchangeClock(world.ask).measure()
    last, rate = clock.last, clock.rate
    world.failing = True
    with pytest.raises(OSError):
        await clock.measure()
    assert clock.last == last and clock.rate == rate


async def test_refine_takes_the_rate_over_everything_since_the_first_answer(world: World) -> None:
    """Jitter on one of measure()'s two answers skews its rate; each refinement spans more wall time,
    so the same jitter matters less, and the clock's reading comes back to the exchange's."""
    world.speed = 60.0
    world.errors = [0, 300]  # the second answer 300 exchange ms (5 wall ms at 60×) late
    clock = await ExchangeClock(world.ask).measure()
    assert clock.rate == pytest.approx(60.0 * (1 + 0.3 / 30), rel=1e-9), "one percent off"
    await world.sleep(100.0)
    world.errors = [300]  # the same jitter again, now over 100 s
    await clock.refine()
    assert clock.rate == pytest.approx(60.0, rel=1e-4)
    assert clock.first is not None and clock.first.wall_s == WALL_START_S, "the base stays the first answer"
    await world.sleep(3600.0)
    assert abs(clock.now_ms() - world.exchange_ms()) < 3_600_000 * 60 * 1e-4 + 300


async def test_a_failed_refine_keeps_the_clock_and_refine_before_measure_measures(world: World) -> None:
    world.speed = 60.0
    clock = ExchangeClock(world.ask)
    await clock.refine()
    assert world.asks == 2 and clock.rate == pytest.approx(60.0), "a first refine is a measure"
    last, rate = clock.last, clock.rate
    world.failing = True
    with pytest.raises(OSError):
        await clock.refine()
    assert clock.last == last and clock.rate == rate


async def test_a_measured_clock_extrapolates_without_asking(world: World) -> None:
    world.speed = 60.0
    clock = await ExchangeClock(world.ask).measure()
    world.wall_s += 3600.0  # far beyond any refresh: a measured clock keeps extrapolating
    assert clock.now_ms() == world.exchange_ms()
    assert world.asks == 2
    assert clock.wall_seconds(60_000) == pytest.approx(1.0)  # an exchange minute lasts a wall second
    assert clock.wall_at(world.exchange_ms() + 60_000) == pytest.approx(world.wall_s + 1.0)


async def test_refreshed_asks_only_after_refresh_s(world: World) -> None:
    world.speed = 2.0
    clock = ExchangeClock(world.ask, refresh_s=1.0)
    assert await clock.refreshed_ms() == world.exchange_ms()
    assert world.asks == 1 and clock.rate == 1.0  # one answer: no rate yet
    world.wall_s += 0.75
    assert await clock.refreshed_ms() == world.exchange_ms() - 750  # extrapolated at rate 1, no ask
    assert world.asks == 1
    world.wall_s += 0.5  # 1.25 s since the last answer
    assert await clock.refreshed_ms() == world.exchange_ms()
    assert world.asks == 2
    assert clock.rate == pytest.approx(2.0)  # two answers MIN_RATE_SPAN_S or more apart, taken as measured
    world.wall_s += 0.5
    assert await clock.refreshed_ms() == pytest.approx(world.exchange_ms())
    assert world.asks == 2


async def test_refreshed_rate_needs_answers_min_rate_span_apart_and_is_not_snapped(world: World) -> None:
    world.speed = 1.02
    assert abs(world.speed - 1) < UNIT_RATE_TOLERANCE  # measure() would snap it
    clock = ExchangeClock(world.ask, refresh_s=0.0)
    await clock.refreshed_ms()
    world.wall_s += MIN_RATE_SPAN_S / 2
    await clock.refreshed_ms()
    assert world.asks == 2 and clock.rate == 1.0  # too close together for a rate
    world.wall_s += MIN_RATE_SPAN_S
    await clock.refreshed_ms()
    assert clock.rate == pytest.approx(1.02)  # no snapping on this path


async def test_no_estimate_without_an_answer_or_after_max_extrapolation(world: World) -> None:
    clock = ExchangeClock(world.ask)
    assert clock.estimate_ms() is None
    await clock.refreshed_ms()
    world.wall_s += MAX_EXTRAPOLATION_S
    assert clock.estimate_ms() == world.exchange_ms()
    world.wall_s += 0.5
    assert clock.estimate_ms() is None
    assert world.asks == 1  # estimates never ask
