"""The LSTM: NumPy forward pass equal to Keras, reproducible with a seed, intervals that calibrate."""

from __future__ import annotations

import numpy as np
import pytest
from tune_data import btc

from cryptocast.tune import inference
from cryptocast.tune.conformal import Calibration
from cryptocast.tune.dataset import SplitSpans
from cryptocast.tune.inference import numpy_forward
from cryptocast.tune.lstm import LstmConfig, build
from cryptocast.tune.predictor import LstmPredictor, from_bytes
from cryptocast.tune.training import fit, lstm_predictor, prepare

HOUR_MS = 3_600_000
SPANS = SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS)
SMALL = LstmConfig(seq_len=10, units=8, layers=1, epochs=1, batch=128, seed=3)
SMALL_BATCH = 100  # origins per NumPy batch in the equality test, so batching is exercised cheaply


@pytest.fixture(scope="module")
def prepared():  # noqa: ANN201
    return prepare(btc(1.0), SMALL, SPANS)


def test_numpy_forward_equals_keras(monkeypatch) -> None:  # noqa: ANN001
    config = LstmConfig(seq_len=60, layers=2, units=64, dropout=0.2)  # the served size
    model = build(config, n_features=7)
    weights = [w + np.random.default_rng(1).normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)  # non-zero biases, so a gate-order mix-up cannot pass
    monkeypatch.setattr(inference, "BATCH_ORIGINS", SMALL_BATCH)
    x = np.random.default_rng(0).normal(size=(2 * SMALL_BATCH + 5, 60, 7)).astype(np.float32)  # three batches
    keras_out = np.asarray(model(x, training=False))
    out = numpy_forward(weights, config.layers, x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, keras_out, atol=1e-5)
    assert np.abs(keras_out).max() > 1e-2  # not trivially zero


@pytest.fixture(scope="module")
def weights(prepared):  # noqa: ANN001, ANN201 - trained once, shared by the tests below
    return fit(prepared, SMALL)[0]


def test_training_with_a_fixed_seed_is_reproducible(prepared, weights) -> None:  # noqa: ANN001
    second, _ = fit(prepared, SMALL)
    other, _ = fit(prepared, LstmConfig.from_dict(SMALL.to_dict() | {"seed": 4}))
    for a, b in zip(weights, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, c) for a, c in zip(weights, other, strict=True))


def test_artifact_round_trip_and_tf_path_agree(prepared, weights) -> None:  # noqa: ANN001
    predictor, _ = lstm_predictor(prepared, SMALL, weights)
    restored = from_bytes(predictor.to_bytes())
    compiled = from_bytes(predictor.to_bytes(), use_tf=True)
    candles = btc(0.1, offset_days=2)  # minutes the model never saw
    a, b, c = (p.predict(candles) for p in (predictor, restored, compiled))
    assert a == b
    for x, y in zip(a.horizons, c.horizons, strict=True):
        assert y.point == pytest.approx(x.point, rel=1e-6)
        assert y.lower_80 <= y.point <= y.upper_80 and y.lower_95 <= y.lower_80 and y.upper_80 <= y.upper_95
    assert isinstance(restored, LstmPredictor) and restored.window_minutes == SMALL.seq_len + 60


def test_volatility_scaled_conformal_tracks_regimes_where_plain_does_not() -> None:
    rng = np.random.default_rng(0)
    vol = np.where(rng.random(20_000) < 0.5, 0.5, 2.0)[:, None]
    residuals = rng.normal(size=(20_000, 1)) * vol
    cal_idx, test_idx = slice(0, 10_000), slice(10_000, None)
    scaled = Calibration.fit(residuals[cal_idx], vol[cal_idx])
    plain = Calibration.fit(residuals[cal_idx], None)
    test_vol, test_res = vol[test_idx], residuals[test_idx]
    for calibration in (scaled, plain):
        inside = np.abs(test_res) <= calibration.half_widths(test_vol)[0.8]
        calm, wild = inside[test_vol == 0.5].mean(), inside[test_vol == 2.0].mean()
        if calibration is scaled:
            assert abs(calm - 0.8) < 0.02 and abs(wild - 0.8) < 0.02
        else:
            assert calm > 0.95 and wild < 0.65  # over-covers calm minutes, under-covers volatile ones
