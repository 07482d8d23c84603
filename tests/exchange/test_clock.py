"""The exchange clock and the persisted timeline: whole-week shifts, restarts, re-speeding, reset."""

from __future__ import annotations

from pathlib import Path

from cryptocast.exchange.clock import DAY_MS, WEEK_MS, Timeline, open_timeline, period_starts

FIRST_BARS = [1572147540000, 1572147780000, 1740798000000]  # two 2019 recordings, one 2025


class FakeWall:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_one_whole_week_shift_per_period_and_history_before_now() -> None:
    wall = FakeWall(1_800_000_000_000)
    timeline, periods = open_timeline(FIRST_BARS, speed=60, history_ms=3 * DAY_MS, wall=wall)
    assert periods == {
        1572147540000: 1572147540000,
        1572147780000: 1572147540000,
        1740798000000: 1740798000000,
    }
    assert len(timeline.shifts) == 2
    now = timeline.clock(wall).now()
    for start in periods.values():
        shift = timeline.shift_for(str(start))
        assert shift % WEEK_MS == 0
        assert 3 * DAY_MS <= now - (start + shift) < 3 * DAY_MS + WEEK_MS


def test_clock_speed_maps_wall_to_exchange_time() -> None:
    wall = FakeWall(1_000_000)
    timeline, _ = open_timeline(FIRST_BARS, speed=60, wall=wall, exchange_start_ms=5_000_000)
    clock = timeline.clock(wall)
    wall.now += 1_000
    assert clock.now() == 5_000_000 + 60_000
    assert clock.wall_at(5_000_000 + 60_000) == wall.now
    assert clock.wall_seconds(24 * 3_600_000) == 1440.0


def test_restart_continues_the_stored_timeline(tmp_path: Path) -> None:
    wall = FakeWall(1_800_000_000_000)
    first, _ = open_timeline(FIRST_BARS, speed=60, state_dir=tmp_path, wall=wall)
    wall.now += 10_000
    before = first.clock(wall).now()
    again, _ = open_timeline(FIRST_BARS, speed=60, state_dir=tmp_path, wall=wall)
    assert again == first and again.clock(wall).now() == before
    faster, _ = open_timeline(FIRST_BARS, speed=600, state_dir=tmp_path, wall=wall)
    assert faster.shifts == first.shifts and faster.clock(wall).now() == before  # no jump
    wall.now += 1_000
    assert faster.clock(wall).now() == before + 600_000
    assert Timeline.load(tmp_path / "epoch.json") == faster


def test_reset_starts_a_new_timeline(tmp_path: Path) -> None:
    wall = FakeWall(1_800_000_000_000)
    first, _ = open_timeline(FIRST_BARS, speed=1, state_dir=tmp_path, wall=wall)
    wall.now += 30 * DAY_MS
    fresh, _ = open_timeline(FIRST_BARS, speed=1, state_dir=tmp_path, wall=wall, reset=True)
    assert fresh.wall_start_ms == wall.now and fresh.shifts != first.shifts


def test_new_recordings_get_their_own_shift(tmp_path: Path) -> None:
    wall = FakeWall(1_800_000_000_000)
    open_timeline(FIRST_BARS[:1], speed=1, state_dir=tmp_path, wall=wall)
    timeline, _ = open_timeline(FIRST_BARS, speed=1, state_dir=tmp_path, wall=wall)
    assert len(timeline.shifts) == 2


def test_period_grouping() -> None:
    assert period_starts([0, WEEK_MS - 1, WEEK_MS]) == {0: 0, WEEK_MS - 1: 0, WEEK_MS: WEEK_MS}
