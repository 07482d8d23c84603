"""Predictors: what the registry stores and serving loads.

A predictor turns recent candles into a forecast for every horizon: a point price and nested 80 %
and 95 % intervals. Three kinds share one interface — persistence of close(t) with calibrated
intervals (the floor every pair always has), the LSTM, and the served combination of the two that
picks, per horizon, whichever the promotion gate chose. The LSTM runs in NumPy by default, so a
replica needs no TensorFlow; ``use_tf=True`` runs the same weights through a ``tf.function``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryptocast.tune import heads
from cryptocast.tune.candles import Candles
from cryptocast.tune.conformal import LEVELS, Calibration
from cryptocast.tune.dataset import HORIZONS, horizon_scale, origins
from cryptocast.tune.features import FeatureFrame, FeatureSpec, Scaler, compute, serving_candles
from cryptocast.tune.inference import NumpyLstm
from cryptocast.tune.lstm import LstmConfig, build, windows
from cryptocast.tune.network_scale import NetworkCalibration, calibration_from_dict

PERSISTENCE = "persistence"
LSTM = "lstm"
ARTIFACT_FORMAT = 1


class NotEnoughHistory(ValueError):
    """The candles given do not hold a complete window ending at the latest minute."""


@dataclass(frozen=True, slots=True)
class HorizonForecast:
    horizon: int  # minutes
    point: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    source: str  # the model kind that produced it


@dataclass(frozen=True, slots=True)
class Forecast:
    origin_ms: int  # open time of the last closed minute; forecasts are for close(origin + h)
    close: float
    horizons: tuple[HorizonForecast, ...]


@dataclass(frozen=True, slots=True)
class ReturnForecast:
    """Many origins at once, in log returns: point (origins, horizons) and half-widths per level."""

    point: np.ndarray
    half: dict[float, np.ndarray]
    source: tuple[str, ...]  # kind per horizon


class Predictor:
    """Common behaviour; subclasses say how the point forecast is made."""

    kind: str
    spec: FeatureSpec
    seq_len: int
    calibration: Calibration
    horizons: tuple[int, ...] = HORIZONS

    @property
    def window_minutes(self) -> int:
        """Consecutive candles, ending at the origin, that :meth:`predict` reads (the features' window,
        or the intervals' lookback if longer: the scale's, and the minutes since the calibration's fit
        that its online level correction replays)."""
        return max(serving_candles(self.seq_len), self.calibration.lookback + 1)

    def needed_minutes(self, origin_ms: int) -> int:
        """The fewest of those candles a forecast from ``origin_ms`` needs: a calibration fitted an
        hour ago replays an hour, not a day."""
        return max(serving_candles(self.seq_len), self.calibration.needed_minutes(origin_ms))

    def features(self, candles: Candles, cache: dict | None = None) -> FeatureFrame:
        """Features of ``candles``; ``cache`` shares them between predictors of one call."""
        if cache is None:
            return compute(candles, self.spec)
        if self.spec not in cache:
            cache[self.spec] = compute(candles, self.spec)
        return cache[self.spec]

    def point_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def usable_origins(self, candles: Candles) -> np.ndarray:
        """Grid indices where this predictor has a complete window."""
        return origins(self.features(candles), self.seq_len)

    def forecast_returns(
        self, candles: Candles, idx: np.ndarray, cache: dict | None = None
    ) -> ReturnForecast:
        ff = self.features(candles, cache)
        point = self.point_returns(ff, idx)
        half = self.calibration.intervals(ff, idx, self.horizons, lambda rows: self.point_returns(ff, rows))
        return ReturnForecast(point, half, (self.kind,) * len(self.horizons))

    def predict(self, candles: Candles) -> Forecast:
        """Forecast from the latest minute of ``candles``: the newest :attr:`window_minutes` of them are
        read, and at least :meth:`needed_minutes` must be there."""
        needed = self.needed_minutes(int(candles.open_time[-1])) if len(candles) else self.window_minutes
        if len(candles) < needed:
            raise NotEnoughHistory(f"need {needed} consecutive minutes, got {len(candles)}")
        window = candles.tail(self.window_minutes)
        cache: dict = {}
        ff = self.features(window, cache)  # the same features as compute_tail(candles, seq_len)
        last = np.array([len(ff.open_time) - 1])
        if not ff.usable[-self.seq_len :].all():
            raise NotEnoughHistory(f"the last {self.window_minutes} minutes are not complete")
        out = self.forecast_returns(window, last, cache)
        close = float(ff.close[-1])
        return Forecast(
            int(ff.open_time[-1]),
            close,
            tuple(_prices(close, out, j, h) for j, h in enumerate(self.horizons)),
        )

    def to_bytes(self) -> bytes:
        arrays = self._arrays()
        meta = {
            "format": ARTIFACT_FORMAT,
            "kind": self.kind,
            "groups": list(self.spec.groups),
            "seq_len": self.seq_len,
            "horizons": list(self.horizons),
            "calibration": self.calibration.to_dict(),
            **self._meta(),
        }
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]  # numpy's stub checks **arrays against allow_pickle: bool
        return buffer.getvalue()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _meta(self) -> dict:
        return {}


def _prices(close: float, out: ReturnForecast, j: int, horizon: int) -> HorizonForecast:
    p = out.point[0, j]
    h80, h95 = out.half[0.8][0, j], out.half[0.95][0, j]
    return HorizonForecast(
        horizon,
        close * float(np.exp(p)),
        close * float(np.exp(p - h80)),
        close * float(np.exp(p + h80)),
        close * float(np.exp(p - h95)),
        close * float(np.exp(p + h95)),
        out.source[j],
    )


class PersistencePredictor(Predictor):
    """close(t) for every horizon, with conformal intervals around it."""

    kind = PERSISTENCE

    def __init__(self, calibration: Calibration, spec: FeatureSpec = FeatureSpec()) -> None:
        self.calibration = calibration
        self.spec = spec
        self.seq_len = 1

    def features(self, candles: Candles, cache: dict | None = None) -> FeatureFrame:
        """Any frame already computed for this call will do: persistence reads only the close and the
        volatility, which every feature spec computes alike (saves a second pass when serving)."""
        if cache:
            return next(iter(cache.values()))
        return super().features(candles, cache)

    def point_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        return np.zeros((len(idx), len(self.horizons)))


class LstmPredictor(Predictor):
    """The trained network plus its scaler and calibration.

    A distributional head's calibration is a :class:`NetworkCalibration`: its intervals are scaled by
    this network's forecast of the spread, bound here. The point and the scale come from one pass;
    the last pass is kept, so a forecast's point and its bands do not run the network twice."""

    kind = LSTM

    def __init__(
        self,
        config: LstmConfig,
        weights: list[np.ndarray],
        scaler: Scaler,
        calibration: Calibration,
        use_tf: bool = False,
    ) -> None:
        self.config = config
        self.weights = weights
        self.scaler = scaler
        if isinstance(calibration, NetworkCalibration):
            if not heads.distributional(config.head):
                raise ValueError(f"a {config.head!r} head forecasts no scale for its intervals")
            calibration = calibration.bound(self.scale_returns)
        self.calibration = calibration
        self.spec = FeatureSpec(config.groups)
        self.seq_len = config.seq_len
        self._numpy = NumpyLstm(weights, config.layers)
        self._tf_call = self._compile(len(scaler.mean)) if use_tf else None
        self._last: tuple[FeatureFrame, np.ndarray, tuple[np.ndarray, np.ndarray | None]] | None = None

    def _compile(self, n_features: int) -> Callable[[np.ndarray], Any]:
        """The network as a ``tf.function`` over float32 windows (origins, seq_len, features)."""
        from cryptocast.tune.tfsetup import tensorflow

        tf = tensorflow()
        model = build(self.config, n_features, len(self.horizons))
        model.set_weights(self.weights)
        spec = tf.TensorSpec((None, self.seq_len, n_features), tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def network(self, x: np.ndarray) -> np.ndarray:
        """Raw network output for windows (origins, seq_len, features)."""
        if self._tf_call is not None:
            return np.asarray(self._tf_call(x.astype(np.float32)), dtype=np.float64)
        return self._numpy(x).astype(np.float64)

    def _returns(self, ff: FeatureFrame, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(point, scale or None) in log-return units, from one pass (reused for the same origins)."""
        last = self._last
        if last is not None and last[0] is ff and np.array_equal(last[1], idx):
            return last[2]
        x = np.nan_to_num(self.scaler.transform(ff.values), nan=0.0)
        point, scale = heads.read(
            self.config.head, self.network(windows(x, idx, self.seq_len)), len(self.horizons)
        )
        unit = horizon_scale(ff.vol[idx], self.horizons)
        out = (point * unit, None if scale is None else scale * unit)
        self._last = (ff, idx.copy(), out)
        return out

    def point_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        return self._returns(ff, idx)[0]

    def scale_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        """The head's forecast of each horizon's spread (log-return units), the intervals' scale."""
        scale = self._returns(ff, idx)[1]
        if scale is None:
            raise ValueError(f"a {self.config.head!r} head forecasts no scale")
        return scale

    def _arrays(self) -> dict[str, np.ndarray]:
        weights = {f"w{i}": w for i, w in enumerate(self.weights)}
        return weights | {"scaler_mean": self.scaler.mean, "scaler_std": self.scaler.std}

    def _meta(self) -> dict:
        return {"config": self.config.to_dict(), "n_weights": len(self.weights)}


class ServedPredictor(Predictor):
    """Per horizon, the LSTM where the gate promoted it and the baseline elsewhere."""

    kind = "served"

    def __init__(
        self, baseline: PersistencePredictor, lstm: LstmPredictor | None, lstm_horizons: set[int]
    ) -> None:
        self.baseline = baseline
        self.lstm = lstm if lstm_horizons else None
        self.lstm_horizons = lstm_horizons if lstm is not None else set()
        self.spec = (lstm or baseline).spec
        self.seq_len = max(baseline.seq_len, self.lstm.seq_len if self.lstm else 1)
        self.calibration = baseline.calibration

    @property
    def window_minutes(self) -> int:
        return max(p.window_minutes for p in (self.baseline, self.lstm) if p is not None)

    def point_returns(self, ff: FeatureFrame, idx: np.ndarray) -> np.ndarray:
        base = self.baseline.point_returns(ff, idx)
        if self.lstm is None:
            return base
        take = np.array([h in self.lstm_horizons for h in self.horizons])
        return np.where(take[None, :], self.lstm.point_returns(ff, idx), base)

    def forecast_returns(
        self, candles: Candles, idx: np.ndarray, cache: dict | None = None
    ) -> ReturnForecast:
        cache = {} if cache is None else cache
        base = self.baseline.forecast_returns(candles, idx, cache)
        if self.lstm is None:
            return base
        net = self.lstm.forecast_returns(candles, idx, cache)
        take = np.array([h in self.lstm_horizons for h in self.horizons])
        point = np.where(take[None, :], net.point, base.point)
        half = {level: np.where(take[None, :], net.half[level], base.half[level]) for level in LEVELS}
        source = tuple(LSTM if t else PERSISTENCE for t in take)
        return ReturnForecast(point, half, source)

    def predict(self, candles: Candles) -> Forecast:
        if self.lstm is None:
            return self.baseline.predict(candles)
        return Predictor.predict(self, candles)


def from_bytes(data: bytes, use_tf: bool = False) -> PersistencePredictor | LstmPredictor:
    """Rebuild a stored predictor (the caller has already verified the checksum)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"unknown artifact format {meta.get('format')!r}")
        calibration = calibration_from_dict(meta["calibration"])
        if meta["kind"] == PERSISTENCE:
            return PersistencePredictor(calibration, FeatureSpec(tuple(meta["groups"])))
        if meta["kind"] != LSTM:
            raise ValueError(f"unknown model kind {meta['kind']!r}")
        weights = [npz[f"w{i}"] for i in range(meta["n_weights"])]
        scaler = Scaler(npz["scaler_mean"], npz["scaler_std"])
    return LstmPredictor(LstmConfig.from_dict(meta["config"]), weights, scaler, calibration, use_tf=use_tf)
