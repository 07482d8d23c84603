"""The budget's rules on a clock the test moves: live calls come before backfill pages."""

from __future__ import annotations

import pytest

from cryptocast.actors.budget import BACKFILL_SHARE, SAFETY, RateBudget


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def spend_all(budget: RateBudget, weight: int, backfill: bool) -> int:
    spent = 0
    while budget.reserve(weight, backfill) == 0.0:
        spent += weight
    return spent


def test_backfill_stops_at_its_share_and_live_calls_still_get_the_rest() -> None:
    budget = RateBudget(weight_limit=1000, clock=Clock())
    backfill = spend_all(budget, 2, backfill=True)
    assert backfill == pytest.approx(1000 * SAFETY * BACKFILL_SHARE, abs=2)
    live = spend_all(budget, 2, backfill=False)
    assert backfill + live == pytest.approx(1000 * SAFETY, abs=2)
    assert live > 0


def test_live_calls_that_spent_the_minute_hold_backfill_back_until_the_next_minute() -> None:
    clock = Clock(now=60 * 1000 + 10.0)
    budget = RateBudget(weight_limit=100, clock=clock)
    spend_all(budget, 5, backfill=False)
    wait = budget.reserve(2, backfill=True)
    assert wait == pytest.approx(50.05)
    clock.now += wait
    assert budget.reserve(2, backfill=True) == 0.0


def test_a_penalty_blocks_live_and_backfill_alike() -> None:
    clock = Clock()
    budget = RateBudget(weight_limit=6000, clock=clock)
    budget.penalize(30)
    assert budget.reserve(1) == pytest.approx(30)
    assert budget.reserve(1, backfill=True) == pytest.approx(30)
    clock.now += 30
    assert budget.reserve(1) == 0.0


def test_the_exchange_count_also_limits_backfill() -> None:
    budget = RateBudget(weight_limit=1000, clock=Clock())
    budget.observe(int(1000 * SAFETY * BACKFILL_SHARE))  # other clients on the IP spent it
    assert budget.reserve(2, backfill=True) > 0
    assert budget.reserve(2) == 0.0
