"""The market model: intra-minute paths, forming candles, derived fields, aggregation, books."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryptocast.exchange.clock import open_timeline
from cryptocast.exchange.market import DERIVED_FIELDS, Market, ReplaySymbol, derive
from cryptocast.exchange.path import STEPS, minute_path
from cryptocast.exchange.recordings import load_recordings
from cryptocast.records import DERIVABLE_FIELDS, MINUTE_MS, Candle


@pytest.fixture(scope="module")
def market() -> Market:
    recordings = load_recordings(pairs=["BTCUSDT", "LTCBTC"])
    rec = recordings[0]
    timeline, periods = open_timeline(
        [r.first_open for r in recordings],
        speed=1,
        exchange_start_ms=rec.first_open + 10 * 7 * 86_400_000 + 86_400_000,
    )
    return Market(recordings, timeline, periods, timeline.clock(), clones={"BTCUSDT": 2})


def test_path_starts_at_open_touches_high_and_low_and_ends_at_close() -> None:
    for seed in range(200):
        o, h, lo, c, v = 100.0, 100.5, 99.2, 100.1, 12.345
        path = minute_path(seed, o, h, lo, c, v, tick=0.01, lot=0.001)
        assert path.price[0] == o and path.price[STEPS] == c
        assert path.price.max() == h and path.price.min() == lo
        assert np.all(np.diff(path.volume) >= 0) and path.volume[0] == 0 and path.volume[STEPS] == v
        np.testing.assert_allclose(path.price / 0.01, np.rint(path.price / 0.01), atol=1e-6)
    again = minute_path(7, 100.0, 100.5, 99.2, 100.1, 12.345, 0.01, 0.001)
    assert np.array_equal(again.price, minute_path(7, 100.0, 100.5, 99.2, 100.1, 12.345, 0.01, 0.001).price)


def test_forming_candle_is_partial_and_ends_as_the_recorded_candle(market: Market) -> None:
    sym = market.symbols["BTCUSDT"]
    i = 1234
    t = int(sym.times[i])
    finished = Candle.from_rest_row(sym.klines("1m", t, t, 1, t + MINUTE_MS).rows()[0])
    assert (finished.open, finished.high, finished.low, finished.close, finished.volume) == (
        sym.o[i],
        sym.h[i],
        sym.l[i],
        sym.c[i],
        sym.v[i],
    )
    volumes, seen_final = [], False
    for second in range(60):
        row = sym.klines("1m", t, None, 5, t + second * 1000 + 500).rows()
        assert len(row) == 1  # only the forming minute: later minutes do not exist yet
        partial = Candle.from_rest_row(row[0])
        assert partial.open == finished.open and finished.low <= partial.low <= partial.high <= finished.high
        volumes.append(partial.volume)
        seen_final |= partial == finished
    assert volumes == sorted(volumes) and volumes[-1] <= finished.volume
    assert not seen_final or sym.v[i] == 0  # the finished candle never leaks before the close


def test_klines_pages_and_holes(market: Market) -> None:
    sym = market.symbols["LTCBTC"]
    now = sym.end + MINUTE_MS
    got: list[int] = []
    start = 0
    while rows := sym.klines("1m", start, None, 1000, now).rows():
        got += [r[0] for r in rows]
        start = rows[-1][0] + 1
    assert got == sym.times.tolist()
    latest = sym.klines("1m", None, None, 500, now).rows()
    assert json.loads(sym.klines("1m", None, None, 500, now).json()) == latest
    assert [r[0] for r in latest] == sym.times[-500:].tolist()
    before = sym.klines("1m", None, int(sym.times[1000]), 10, now).rows()
    assert [r[0] for r in before] == sym.times[991:1001].tolist()


@pytest.mark.parametrize("interval", ["5m", "1h", "1d", "1w", "1M"])
def test_coarse_intervals_aggregate_minutes(market: Market, interval: str) -> None:
    sym = market.symbols["LTCBTC"]
    now = sym.end
    minutes = sym.bars(0, len(sym.times), now)
    bars = sym.klines(interval, 0, None, 1000, now)
    first = Candle.from_rest_row(bars.rows()[0])
    inside = (minutes.open_time >= first.open_time) & (minutes.open_time <= first.close_time)
    assert first.open == minutes.open[inside][0] and first.close == minutes.close[inside][-1]
    assert first.high == minutes.high[inside].max() and first.low == minutes.low[inside].min()
    assert first.volume == pytest.approx(minutes.volume[inside].sum())
    assert first.trades == minutes.trades[inside].sum()
    assert len(set(bars.open_time.tolist())) == len(bars.open_time)


def test_derived_fields_are_consistent() -> None:
    o, h, lo, c, v = (np.array([x]) for x in (10.0, 11.0, 9.0, 10.5, 4.0))
    q, n, vb, qb = derive(o, h, lo, c, v, trade_unit=0.5)
    assert q[0] == pytest.approx(4.0 * (11 + 9 + 10.5) / 3) and n[0] == 8
    assert 0 < vb[0] <= 4.0 and lo[0] * vb[0] <= qb[0] <= h[0] * vb[0]
    assert set(DERIVABLE_FIELDS) <= set(DERIVED_FIELDS)


def test_book_is_around_the_forming_price_and_never_crossed(market: Market) -> None:
    sym = market.symbols["BTCUSDT"]
    for i in range(100, 160):
        t = int(sym.times[i]) + 20_500
        q = sym.book(t)
        price = sym.last_price(t)
        assert q.bid < q.ask and q.bid <= price + 1e-9 and q.ask - q.bid >= sym.tick - 1e-9
        assert q.bid_qty > 0 and q.ask_qty > 0
        assert sym.book(t) == q  # deterministic


def test_clones_are_flagged_and_offset(market: Market) -> None:
    original, clone = market.symbols["BTCUSDT"], market.symbols["BTCUSDT_C02"]
    assert isinstance(clone, ReplaySymbol) and clone.clone_of == "BTCUSDT" and original.clone_of is None
    ratio = clone.c / original.c
    assert np.all(np.abs(ratio - 1.002) < 1e-4) and np.array_equal(clone.times, original.times)
