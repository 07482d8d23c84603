"""The LSTM: NumPy forward pass equal to Keras for every head, reproducible with a seed, intervals that
calibrate, on RV30 or on the network's own forecast of the spread."""

from __future__ import annotations

import numpy as np
import pytest

from cryptocast.tune import heads, inference
from cryptocast.tune.conformal import Calibration
from cryptocast.tune.dataset import HORIZONS, SplitSpans
from cryptocast.tune.inference import numpy_forward
from cryptocast.tune.lstm import LstmConfig, build
from cryptocast.tune.network_scale import NetworkCalibration
from cryptocast.tune.predictor import LstmPredictor, from_bytes
from cryptocast.tune.tfsetup import tensorflow
from cryptocast.tune.training import fit, lstm_predictor, prepare, recent_calibration
from cryptocast.tune.walkforward import DailyRecalibrated
from tests.tune.tune_data import btc

HOUR_MS = 3_600_000
SPANS = SplitSpans(val_ms=2 * HOUR_MS, calib_ms=3 * HOUR_MS, test_ms=3 * HOUR_MS)
SMALL = LstmConfig(seq_len=10, units=8, layers=1, epochs=1, batch=128, seed=3)
SMALL_BATCH = 100  # origins per NumPy batch in the equality test, so batching is exercised cheaply


@pytest.fixture(scope="module")
def prepared():
    return prepare(btc(1.0), SMALL, SPANS)


@pytest.mark.parametrize("head", heads.HEADS)
def test_numpy_forward_equals_keras(monkeypatch, head: str) -> None:
    config = LstmConfig(seq_len=60, layers=2, units=64, dropout=0.2, head=head)  # the served size
    model = build(config, n_features=7)
    weights = [
        w + np.random.default_rng(1).normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()
    ]
    model.set_weights(weights)  # non-zero biases, so a gate-order mix-up cannot pass
    monkeypatch.setattr(inference, "BATCH_ORIGINS", SMALL_BATCH)
    x = np.random.default_rng(0).normal(size=(2 * SMALL_BATCH + 5, 60, 7)).astype(np.float32)  # three batches
    keras_out = np.asarray(model(x, training=False))
    out = numpy_forward(weights, config.layers, x)
    assert out.dtype == np.float32 and out.shape == (len(x), heads.outputs(head, len(HORIZONS)))
    np.testing.assert_allclose(out, keras_out, atol=1e-5)
    assert np.abs(keras_out).max() > 1e-2  # not trivially zero


@pytest.mark.parametrize("head", heads.HEADS)
def test_the_loss_trains_what_serving_reads(head: str) -> None:
    """The Keras loss, recomputed in NumPy from the point and scale serving reads off the raw outputs."""
    tensorflow()  # as the product does: TensorFlow configured before Keras starts its runtime
    import keras

    n, rng = len(HORIZONS), np.random.default_rng(2)
    raw = rng.normal(size=(64, heads.outputs(head, n))).astype(np.float32)
    z, variance_ratio = rng.standard_t(4, size=(64, n)), rng.gamma(0.5, 2.0, size=(64, n))
    y_true = heads.training_targets(z, variance_ratio)
    loss = np.asarray(
        heads.keras_loss(head, n)(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(raw))
    )
    point, scale = heads.read(head, raw.astype(np.float64), n)
    expected = np.abs(z - point).mean(axis=1)
    if head == heads.QLIKE:
        expected += (variance_ratio / scale**2 + np.log(scale**2)).mean(axis=1)
    elif head == heads.PINBALL:
        q = heads.quantiles(point, raw[:, n:].astype(np.float64))
        assert (np.diff(q, axis=1) > 0).all()  # never crossing
        np.testing.assert_allclose((q[:, 2] - q[:, 1]) / 2, scale)  # the 80 % band's half-width
        for k, level in enumerate(heads.QUANTILES):
            diff = z - q[:, k]
            expected += np.maximum(level * diff, (level - 1) * diff).mean(axis=1)
    else:
        assert scale is None
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def weights(prepared):
    return fit(prepared, SMALL)[0]


def test_training_with_a_fixed_seed_is_reproducible(prepared, weights) -> None:
    second, _ = fit(prepared, SMALL)
    other, _ = fit(prepared, LstmConfig.from_dict(SMALL.to_dict() | {"seed": 4}))
    for a, b in zip(weights, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, c) for a, c in zip(weights, other, strict=True))


def test_artifact_round_trip_and_tf_path_agree(prepared, weights) -> None:
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


@pytest.fixture(scope="module")
def qlike(prepared):
    config = LstmConfig.from_dict(SMALL.to_dict() | {"head": heads.QLIKE})
    p = prepare(btc(1.0), config, SPANS)
    return p, config, fit(p, config)[0]


def test_a_distributional_head_scales_its_own_intervals(qlike) -> None:
    p, config, weights = qlike
    predictor, _ = lstm_predictor(p, config, weights)
    assert isinstance(predictor.calibration, NetworkCalibration)
    idx = p.split.test
    scale = predictor.scale_returns(p.ff, idx)
    half = predictor.calibration.intervals(p.ff, idx)
    for level, q in predictor.calibration.quantiles.items():
        np.testing.assert_allclose(half[level], scale * q[None, :])  # the network's scale, not RV30's
    rv30_ratio = half[0.8] / p.ff.vol[idx, None]
    assert rv30_ratio.std(axis=0).min() > 0.01 * rv30_ratio.mean()  # varies where RV30 alone would not
    # the scored calibration covers on minutes the network never saw
    inside = np.abs(p.y[idx] - predictor.point_returns(p.ff, idx)) <= half[0.8]
    assert abs(inside.mean() - 0.8) < 0.1
    # stored, loaded, through TF, and refitted daily: still on the network's scale
    candles = btc(0.1, offset_days=2)
    restored, compiled = from_bytes(predictor.to_bytes()), from_bytes(predictor.to_bytes(), use_tf=True)
    assert isinstance(restored.calibration, NetworkCalibration) and restored.predict(
        candles
    ) == predictor.predict(candles)
    for a, b in zip(predictor.predict(candles).horizons, compiled.predict(candles).horizons, strict=True):
        assert b.upper_95 == pytest.approx(a.upper_95, rel=1e-6) and b.lower_80 == pytest.approx(
            a.lower_80, rel=1e-6
        )
    refit, _ = recent_calibration(restored, btc(1.0), SPANS.calib_ms)
    assert isinstance(refit, NetworkCalibration)
    served = LstmPredictor(config, weights, p.scaler, refit)
    assert served.calibration.scale_model.forecast.__self__ is served  # bound to its own network
    daily = DailyRecalibrated(served, SPANS.calib_ms, period_ms=HOUR_MS)
    test = idx[-120:]
    out = daily.forecast_returns(btc(1.0), test)
    assert np.isfinite(out.half[0.95]).all() and (out.half[0.95] > out.half[0.8]).all()


def test_a_point_head_has_no_scale_to_serve(prepared, weights, qlike) -> None:
    p, config, qlike_weights = qlike
    network_calibration = lstm_predictor(p, config, qlike_weights)[0].calibration
    with pytest.raises(ValueError, match="forecasts no scale"):
        LstmPredictor(SMALL, weights, prepared.scaler, network_calibration)
