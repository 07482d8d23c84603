"""Features are causal, windows never straddle a hole, scalers see training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from cryptocast.records import MINUTE_MS
from cryptocast.tune.candles import Candles
from cryptocast.tune.dataset import HORIZONS, SplitSpans, origins, realised_variance, targets
from cryptocast.tune.features import (
    GROUPS,
    LOOKBACK,
    ORDER_FLOW,
    FeatureSpec,
    FeatureUnavailable,
    compute,
    compute_tail,
)
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.sweep import FEATURE_SETS, feature_sets, search_space
from cryptocast.tune.training import prepare
from tests.tune.tune_data import HOLE_START_MS, btc, ethbtc_around_hole

HOUR_MS = 3_600_000


def _with_book(candles: Candles, derived: frozenset[str] = frozenset()) -> Candles:
    """The recording with top of book and order flow as live klines carry them (values made up for
    the test, flagged ``derived`` where asked)."""
    f = candles.frame.copy()
    rng = np.random.default_rng(5)
    f["bid_price"], f["ask_price"] = f["close"] * 0.9999, f["close"] * 1.0001
    f["bid_qty"], f["ask_qty"] = f["volume"], f["volume"] * 0.5
    f["taker_buy_base"] = f["volume"] * rng.uniform(0.2, 0.8, len(f))
    f["trades"] = np.maximum(np.round(f["volume"] * rng.uniform(5, 15, len(f))), 1)
    return Candles(f, derived)


def test_perturbing_the_future_never_changes_features_at_t() -> None:
    candles = _with_book(btc(0.5))
    spec = FeatureSpec(GROUPS)
    before = compute(candles, spec)
    cut = len(candles) // 2
    future = candles.frame.copy()
    rng = np.random.default_rng(1)
    for column in (
        "open",
        "high",
        "low",
        "close",
        "volume",
        "bid_price",
        "ask_price",
        "bid_qty",
        "taker_buy_base",
        "trades",
    ):
        future.loc[cut:, column] = future.loc[cut:, column].to_numpy() * rng.uniform(
            0.5, 2.0, len(future) - cut
        )
    future.loc[cut:, "high"] = future.loc[cut:, ["open", "high", "low", "close"]].max(axis=1)
    future.loc[cut:, "low"] = future.loc[cut:, ["open", "high", "low", "close"]].min(axis=1)
    after = compute(Candles(future, candles.derived), spec)
    np.testing.assert_array_equal(before.values[:cut], after.values[:cut])
    np.testing.assert_array_equal(before.vol[:cut], after.vol[:cut])
    assert not np.allclose(before.values[cut:], after.values[cut:], equal_nan=True)  # the change was real


def test_windows_and_targets_skip_the_exchange_hole() -> None:
    candles = ethbtc_around_hole(minutes_before=300, minutes_after=300)
    ff = compute(candles)
    y = targets(ff)
    seq_len = 30
    idx = origins(ff, seq_len, y)
    missing = np.isnan(ff.close)
    # the 140-minute outage and, 70 minutes later, the 3-minute one
    assert missing.sum() == 143 and ff.open_time[missing][0] == HOLE_START_MS
    for t in idx:  # window, lookback and every target minute are present
        assert not missing[t - seq_len - LOOKBACK + 1 : t + max(HORIZONS) + 1].any()
    before = idx[ff.open_time[idx] < HOLE_START_MS]
    after = idx[ff.open_time[idx] > HOLE_START_MS]
    assert len(before) and len(after)  # both sides stay usable
    assert ff.open_time[before[-1]] == HOLE_START_MS - (max(HORIZONS) + 1) * MINUTE_MS
    first_after_holes = ff.open_time[missing][-1] + MINUTE_MS
    assert ff.open_time[after[0]] == first_after_holes + (LOOKBACK + seq_len - 1) * MINUTE_MS


def test_scaler_is_fitted_on_the_training_span_only() -> None:
    candles = btc(1.0)
    config = LstmConfig(seq_len=15)
    spans = SplitSpans(val_ms=3 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=6 * HOUR_MS)
    base = prepare(candles, config, spans)
    val_start = base.split.bounds[1]

    def scaled_from(start_ms: int, factor: float) -> np.ndarray:
        f = candles.frame.copy()
        later = f["open_time_ms"] >= start_ms
        f.loc[later, "volume"] *= factor
        f.loc[later, ["open", "high", "low", "close"]] *= np.linspace(1, factor, later.sum())[:, None]
        return prepare(Candles(f), config, spans).scaler.mean

    np.testing.assert_array_equal(
        scaled_from(val_start, 3.0), base.scaler.mean
    )  # after the train span: no effect
    assert not np.allclose(
        scaled_from(val_start - 4 * HOUR_MS, 3.0), base.scaler.mean
    )  # inside it: an effect
    assert all(base.ff.open_time[i] + max(HORIZONS) * MINUTE_MS < val_start for i in base.split.train)


def test_order_flow_is_computed_where_recorded_and_refused_where_derived() -> None:
    recorded = _with_book(btc(0.2))
    ff = compute(recorded, FeatureSpec(("returns", *ORDER_FLOW)))
    assert {"taker_share", "taker_share_15", "trades_rel", "trade_size_rel"} <= set(ff.names)
    f = recorded.frame
    share = ff.values[-1, ff.names.index("taker_share_15")]
    assert share == pytest.approx(f["taker_buy_base"].iloc[-15:].sum() / f["volume"].iloc[-15:].sum())
    for column, group in (("taker_buy_base", "taker"), ("trades", "trades")):
        derived = _with_book(btc(0.2), frozenset({column}))
        with pytest.raises(FeatureUnavailable, match=f"'{group}' group needs '{column}', which is derived"):
            compute(derived, FeatureSpec(("returns", group)))
        compute(
            derived, FeatureSpec(("returns", *(g for g in ORDER_FLOW if g != group)))
        )  # the other one is fine
    with pytest.raises(FeatureUnavailable, match="'trades' column"):
        compute(btc(0.2), FeatureSpec(("returns", "trades")))  # an OHLCV file has no order flow at all
    with pytest.raises(FeatureUnavailable, match="top-of-book"):
        compute(btc(0.2), FeatureSpec(("returns", "book")))


def test_the_sweep_leaves_out_feature_sets_the_data_only_derives() -> None:
    usable, refused = feature_sets(_with_book(btc(0.2)))
    assert set(usable) == set(FEATURE_SETS) and not refused
    replay = _with_book(btc(0.2), frozenset({"trades", "taker_buy_base", "quote_volume"}))
    usable, refused = feature_sets(replay)
    assert "order_flow" in refused and "derived" in refused["order_flow"]
    assert usable and not any(set(ORDER_FLOW) & set(groups) for groups in usable.values())
    searched = search_space(replay)["groups"].categories
    assert sorted(map(tuple, searched)) == sorted(usable.values())


def test_realised_variance_sums_the_squared_returns_ahead_and_never_crosses_a_hole() -> None:
    ff = compute(ethbtc_around_hole(minutes_before=120, minutes_after=120))
    rv = realised_variance(ff)
    r = np.diff(np.log(ff.close))
    for t in (0, 50, 87):  # before the hole, whole horizons
        for j, h in enumerate(HORIZONS):
            assert rv[t, j] == pytest.approx(np.sum(r[t : t + h] ** 2))
    missing = np.flatnonzero(np.isnan(ff.close))
    for j, h in enumerate(HORIZONS):
        crosses = np.zeros(len(rv), dtype=bool)
        for m in missing:
            crosses[max(m - h, 0) : m + 1] = True
        assert (
            np.isnan(rv[crosses, j]).all()
            and np.isfinite(rv[~crosses & (np.arange(len(rv)) < len(rv) - h), j]).all()
        )


@pytest.mark.parametrize("seq_len", [15, 60])
def test_serving_features_of_the_tail_equal_the_full_computation(seq_len: int) -> None:
    candles = _with_book(btc(0.5))
    spec = FeatureSpec(GROUPS)
    full = compute(candles, spec)
    tail = compute_tail(candles, seq_len, spec)
    assert len(tail.open_time) == seq_len + LOOKBACK  # only what the last window needs
    np.testing.assert_array_equal(tail.open_time[-seq_len:], full.open_time[-seq_len:])
    np.testing.assert_array_equal(tail.values[-seq_len:], full.values[-seq_len:])
    np.testing.assert_array_equal(tail.vol[-seq_len:], full.vol[-seq_len:])
    assert tail.usable[-seq_len:].all() and not tail.usable[:LOOKBACK].any()
    # one minute shorter and the first row of the window loses its lookback
    assert not compute(candles.tail(seq_len + LOOKBACK - 1), spec).usable[-seq_len:].all()
