"""Registry and gate against a real PostgreSQL: baseline first, checksums, promotion, rollback, pruning."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cryptocast.serve.reads import fetch
from cryptocast.sql import pairmetrics
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline, recalibrate_pair
from cryptocast.tune.candles import from_database
from cryptocast.tune.dataset import HORIZONS, SplitSpans, origins, targets
from cryptocast.tune.features import compute
from cryptocast.tune.gate import decide, recheck
from cryptocast.tune.history import HistoryNeeds
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.predictor import LSTM, PERSISTENCE, LstmPredictor
from cryptocast.tune.promotion import gate_and_register
from cryptocast.tune.sweep import SweepResult
from cryptocast.tune.training import fit, lstm_predictor, persistence_predictor, prepare
from cryptocast.tune.training_run import TrainOptions
from tests.tune.tune_data import HOLE_START_MS, btc, ethbtc_around_hole, load_pair

HOUR_MS = 3_600_000
SPANS = SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS)
SMALL = LstmConfig(seq_len=10, units=8, epochs=1, batch=128, seed=3)
ALL = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
# Added to the network's output (volatility-scaled returns): a forecast of a 3-sigma rise every
# minute, far worse than persistence on every period of the test window.
BIAS = 3.0


@pytest.fixture(scope="module")
def lstm():
    prepared = prepare(btc(1.0), SMALL, SPANS)
    weights, _ = fit(prepared, SMALL)
    return lstm_predictor(prepared, SMALL, weights)[0]


async def test_windows_from_postgres_skip_the_hole(db) -> None:
    sid = await load_pair(db, "ETHBTC", ethbtc_around_hole(200, 200))
    candles = await from_database(db, sid, *ALL)
    assert "taker_buy_base" in candles.derived  # marked derived by the writer, so never a default feature
    ff = compute(candles)
    idx = origins(ff, 20, targets(ff))
    missing = np.flatnonzero(np.isnan(ff.close))
    assert len(missing) == 143 and ff.open_time[missing[0]] == HOLE_START_MS
    assert len(idx) > 100
    assert not np.any((idx[:, None] >= missing[None, :] - 30) & (idx[:, None] < missing[None, :] + 80))


async def test_baseline_first_then_lstm_on_promoted_horizons(db, tmp_path, lstm) -> None:
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(0.5, offset_days=2))
    with pytest.raises(registry.NoChampion):
        await registry.load_served(db, sid)
    baseline = await ensure_baseline(db, store, sid)
    assert baseline.kind == PERSISTENCE and baseline.status == registry.CHAMPION
    assert (await ensure_baseline(db, store, sid)).id == baseline.id  # idempotent
    record = await registry.register(
        db, store, sid, lstm, registry.CHAMPION, "test", metrics={"served_horizons": [1, 15]}
    )
    served = await registry.load_served(db, sid)
    forecast = served.predict(await from_database(db, sid, *ALL))
    assert [h.source for h in forecast.horizons] == [LSTM, PERSISTENCE, LSTM, PERSISTENCE]
    assert forecast.horizons[1].point == forecast.close  # the baseline serves h=5: close(t)
    assert record.version == baseline.version + 1


async def test_a_corrupted_artifact_is_refused(db, tmp_path, lstm) -> None:
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(0.3))
    record = await registry.register(db, store, sid, lstm, registry.SHADOW, "test")
    assert registry.load(record).predict(btc(0.2, offset_days=3)).horizons
    path = tmp_path / "BTCUSDT" / f"v{record.version:05d}-lstm.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(registry.CorruptArtifact):
        registry.load(record)


async def test_rollback_and_pruning(db, tmp_path, lstm) -> None:
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(0.3))
    versions = [  # one after another: each registration supersedes the one before
        await registry.register(
            db, store, sid, lstm, registry.CHAMPION, "t", metrics={"served_horizons": horizons}
        )
        for horizons in ([1], [5], [15])
    ]
    shadow = await registry.register(db, store, sid, lstm, registry.SHADOW, "not promoted")
    champion = await registry.current(db, sid, LSTM)
    assert (
        champion.id == versions[-1].id
        and (await registry.current(db, sid, LSTM, registry.SHADOW)).id == shadow.id
    )
    restored = await registry.rollback(db, sid)
    assert restored.id == versions[1].id
    assert (await registry.current(db, sid, LSTM)).served_horizons == [5]
    pruned = await registry.prune(db, sid, keep=2)
    rows = await registry.records(db, sid)
    # the newest two (v4 shadow, v3) plus the champion (v2, older) keep their files; v1 goes
    assert pruned == 1 and [r.version for r in rows if r.artifact_uri] == [4, 3, 2]
    assert (await registry.rollback(db, sid)) is None  # the older ones were pruned: the baseline alone serves
    assert await registry.current(db, sid, LSTM) is None


def test_a_worse_challenger_is_never_promoted() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        days = rng.integers(3, 12)
        persistence = rng.uniform(10, 20, size=(days, 4))
        champion = persistence * rng.uniform(0.97, 1.0, size=(days, 4))
        worse = champion * rng.uniform(1.0, 1.05, size=(days, 4))
        assert not any(d.promote for d in decide(worse, champion, persistence))
    persistence = rng.uniform(10, 20, size=(7, 4))
    better = persistence * 0.9
    decisions = decide(better, persistence, persistence)
    assert all(d.promote for d in decisions) and "beats champion" in decisions[0].reason
    # better than persistence but not than the champion: the champion keeps the horizon
    assert not any(d.promote for d in decide(persistence * 0.95, persistence * 0.9, persistence))


def test_a_champion_keeps_only_the_horizons_where_it_still_beats_persistence() -> None:
    rng = np.random.default_rng(0)
    persistence = rng.uniform(10, 20, size=(7, 4))
    champion = persistence * np.array([0.9, 1.05, 0.9, 0.9])  # better at 1, 15, 30; worse at 5
    checks = recheck(champion, persistence, served=[1, 5, 15])
    assert [(d.horizon, d.promote) for d in checks] == [
        (1, True),
        (5, False),
        (15, True),
    ]  # 30 was not served
    assert "demoted to persistence" in checks[1].reason and "kept" in checks[0].reason


async def test_a_champion_that_loses_to_persistence_is_demoted_at_the_next_retrain(
    db, tmp_path, lstm
) -> None:
    store = registry.ModelStore(str(tmp_path))
    candles = btc(1.0)
    sid = await load_pair(db, "BTCUSDT", candles)
    await ensure_baseline(db, store, sid)
    weights = [*lstm.weights[:-1], lstm.weights[-1] + BIAS]
    biased = LstmPredictor(SMALL, weights, lstm.scaler, lstm.calibration)
    champion = await registry.register(
        db,
        store,
        sid,
        biased,
        registry.CHAMPION,
        "promoted earlier",
        metrics={"served_horizons": list(HORIZONS)},
    )
    served_before = await registry.load_served(db, sid)
    assert {h.source for h in served_before.predict(candles).horizons} == {LSTM}
    options = TrainOptions(
        days=1, needs=HistoryNeeds.fixed(SPANS, 2 * HOUR_MS), period_ms=HOUR_MS // 2
    )  # 6 periods: smallest p = 1/64
    outcome = await gate_and_register(db, store, sid, candles, options, SweepResult(SMALL, weights, 0.0, []))
    assert [(d.horizon, d.promote) for d in outcome.rechecks] == [(h, False) for h in HORIZONS]
    assert all(d.p_vs_persistence >= 0.05 for d in outcome.rechecks)
    old = next(r for r in await registry.records(db, sid) if r.id == champion.id)
    assert old.status == registry.RETIRED and old.served_horizons == []
    assert old.status_reason.count("demoted to persistence") == len(HORIZONS)
    assert outcome.lstm.status == registry.SHADOW  # the equally biased challenger is not promoted either
    assert await _verdicts(db) == {"model_refusals": 1.0}  # counted for /metrics
    assert outcome.lstm.metrics["champion_recheck"][0]["reason"].startswith("h=1: champion demoted")
    forecast = (await registry.load_served(db, sid)).predict(candles)
    assert all(h.source == PERSISTENCE and h.point == forecast.close for h in forecast.horizons)
    # served intervals are refitted on the newest calibration span, not the one before the test window
    newest, _ = persistence_predictor(candles, SPANS.calib_ms)
    before_test, _ = persistence_predictor(
        candles.until(int(candles.open_time[-1]) - SPANS.test_ms), SPANS.calib_ms
    )
    served = (await registry.load_served(db, sid)).baseline.calibration.quantiles
    for level, q in newest.calibration.quantiles.items():
        np.testing.assert_allclose(served[level], q)
        assert not np.allclose(before_test.calibration.quantiles[level], q)


async def _verdicts(db) -> dict[str, float]:
    return {row["name"]: row["value"] for row in await fetch(db, pairmetrics.READ_SQL)}


class FailingSecondPut(registry.ModelStore):
    """A model store that fails on its second write (an object store going away mid-training)."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.puts = 0

    def put(self, symbol: str, version: int, kind: str, data: bytes) -> tuple[str, str]:
        self.puts += 1
        if self.puts == 2:
            raise OSError("the model store went away")
        return super().put(symbol, version, kind, data)


async def test_a_training_that_fails_while_registering_leaves_the_registry_as_it_was(
    db, tmp_path, lstm
) -> None:
    candles = btc(1.0)
    sid = await load_pair(db, "BTCUSDT", candles)
    await ensure_baseline(db, registry.ModelStore(str(tmp_path)), sid)
    weights = [*lstm.weights[:-1], lstm.weights[-1] + BIAS]
    await registry.register(
        db,
        registry.ModelStore(str(tmp_path)),
        sid,
        LstmPredictor(SMALL, weights, lstm.scaler, lstm.calibration),
        registry.CHAMPION,
        "promoted earlier",
        metrics={"served_horizons": list(HORIZONS)},
    )
    before = await registry.records(db, sid)
    options = TrainOptions(days=1, needs=HistoryNeeds.fixed(SPANS, 2 * HOUR_MS), period_ms=HOUR_MS // 2)
    store = FailingSecondPut(str(tmp_path))
    # the recheck demotes the biased champion and the baseline is registered before the LSTM's write fails
    with pytest.raises(OSError, match="went away"):
        await gate_and_register(db, store, sid, candles, options, SweepResult(SMALL, weights, 0.0, []))
    assert store.puts == 2
    assert await registry.records(db, sid) == before  # no demotion, no half-registered baseline
    assert await _verdicts(db) == {}  # nor a gate verdict counted
    served = await registry.load_served(db, sid)
    assert served.lstm_horizons == set(HORIZONS)


async def test_daily_recalibration_refits_both_champions_without_training(db, tmp_path, lstm) -> None:
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(3.5))
    baseline = await ensure_baseline(db, store, sid)
    champion = await registry.register(
        db, store, sid, lstm, registry.CHAMPION, "promoted earlier", metrics={"served_horizons": [5, 15]}
    )
    result = await recalibrate_pair(db, store, sid, calib_ms=SPANS.calib_ms)
    assert result["baseline"]["from"] == baseline.version and result["lstm"]["from"] == champion.version
    new_lstm = await registry.current(db, sid, LSTM)
    assert new_lstm.version == result["lstm"]["version"] and new_lstm.served_horizons == [5, 15]
    refit = registry.load(new_lstm)
    np.testing.assert_array_equal(refit.weights[0], lstm.weights[0])  # the same network
    assert refit.calibration.to_dict() != lstm.calibration.to_dict()  # on the newest span: other quantiles
    old = next(r for r in await registry.records(db, sid) if r.id == champion.id)
    assert old.status == registry.RETIRED and old.status_reason == f"replaced by v{new_lstm.version}"
    assert (await registry.current(db, sid, PERSISTENCE)).version == result["baseline"]["version"]
