"""The write rate: a burst, then a steady refill, per client; the table of clients stays bounded."""

from __future__ import annotations

from cryptocast.serve.ratelimit import WriteRate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    rate = WriteRate(burst=3, per_minute=60, clock=clock)
    assert [rate.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.take("a") == 1.0 and rate.take("a") == 1.0  # refused writes spend nothing
    assert rate.take("b") == 0.0  # another client has its own bucket
    clock.now = 0.5
    assert rate.take("a") == 0.5
    clock.now = 1.0
    assert rate.take("a") == 0.0 and rate.take("a") == 1.0
    clock.now = 1000.0  # idle long: a full burst again, never more
    assert [rate.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_the_table_of_clients_is_bounded_and_forgets_the_least_recent() -> None:
    clock = Clock()
    rate = WriteRate(burst=1, per_minute=1, max_clients=100, clock=clock)
    rate.take("busy")
    for i in range(10_000):
        rate.take(f"10.0.{i // 256}.{i % 256}")
        if i % 50 == 0:
            assert rate.take("busy") > 0  # seen recently: kept, and still limited
    assert len(rate.buckets) == 100 and "busy" in rate.buckets and "10.0.0.0" not in rate.buckets
