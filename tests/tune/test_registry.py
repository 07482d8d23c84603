"""Registry and gate against a real PostgreSQL: baseline first, checksums, promotion, rollback, pruning."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from tune_data import HOLE_START_MS, btc, ethbtc_around_hole, load_pair

from cryptocast.tune import registry
from cryptocast.tune.candles import from_database
from cryptocast.tune.dataset import SplitSpans, origins, targets
from cryptocast.tune.features import compute
from cryptocast.tune.gate import decide
from cryptocast.tune.lstm import LstmConfig
from cryptocast.tune.pipeline import ensure_baseline
from cryptocast.tune.predictor import LSTM, PERSISTENCE
from cryptocast.tune.training import fit, lstm_predictor, prepare

HOUR_MS = 3_600_000
SPANS = SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS)
SMALL = LstmConfig(seq_len=10, units=8, epochs=1, batch=128, seed=3)
ALL = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def lstm():  # noqa: ANN201 - a small trained LstmPredictor
    prepared = prepare(btc(1.0), SMALL, SPANS)
    weights, _ = fit(prepared, SMALL)
    return lstm_predictor(prepared, SMALL, weights)[0]


async def test_windows_from_postgres_skip_the_hole(db) -> None:  # noqa: ANN001
    sid = await load_pair(db, "ETHBTC", ethbtc_around_hole(200, 200))
    candles = await from_database(db, sid, *ALL)
    assert "taker_buy_base" in candles.derived  # marked derived by the writer, so never a default feature
    ff = compute(candles)
    idx = origins(ff, 20, targets(ff))
    missing = np.flatnonzero(np.isnan(ff.close))
    assert len(missing) == 143 and ff.open_time[missing[0]] == HOLE_START_MS
    assert len(idx) > 100
    assert not np.any((idx[:, None] >= missing[None, :] - 30) & (idx[:, None] < missing[None, :] + 80))


async def test_baseline_first_then_lstm_on_promoted_horizons(db, tmp_path, lstm) -> None:  # noqa: ANN001
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(0.5, offset_days=2))
    with pytest.raises(registry.NoChampion):
        await registry.load_served(db, sid)
    baseline = await ensure_baseline(db, store, sid)
    assert baseline.kind == PERSISTENCE and baseline.status == registry.CHAMPION
    assert (await ensure_baseline(db, store, sid)).id == baseline.id  # idempotent
    record = await registry.register(db, store, sid, lstm, registry.CHAMPION, "test", metrics={"served_horizons": [1, 15]})
    served = await registry.load_served(db, sid)
    forecast = served.predict(await from_database(db, sid, *ALL))
    assert [h.source for h in forecast.horizons] == [LSTM, PERSISTENCE, LSTM, PERSISTENCE]
    assert forecast.horizons[1].point == forecast.close  # the baseline serves h=5: close(t)
    assert record.version == baseline.version + 1


async def test_a_corrupted_artifact_is_refused(db, tmp_path, lstm) -> None:  # noqa: ANN001
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


async def test_rollback_and_pruning(db, tmp_path, lstm) -> None:  # noqa: ANN001
    store = registry.ModelStore(str(tmp_path))
    sid = await load_pair(db, "BTCUSDT", btc(0.3))
    versions = []
    for horizons in ([1], [5], [15]):
        versions.append(await registry.register(db, store, sid, lstm, registry.CHAMPION, "t", metrics={"served_horizons": horizons}))
    shadow = await registry.register(db, store, sid, lstm, registry.SHADOW, "not promoted")
    champion = await registry.current(db, sid, LSTM)
    assert champion.id == versions[-1].id and (await registry.current(db, sid, LSTM, registry.SHADOW)).id == shadow.id
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
