"""The Keras LSTM: multi-horizon forecasts of volatility-scaled log returns and of their spread.

The network predicts ``z_h = y_h / (vol(t) · sqrt(h))`` for every horizon at once; dividing by the
recent realised volatility makes the target's spread roughly constant, so calm and volatile days
weigh alike. Its head (:mod:`cryptocast.tune.heads`) adds, per horizon, a forecast of the spread
of the move: a log variance (QLIKE) or the bands' quantiles (pinball), the scale its conformal
intervals are normalised by. :mod:`cryptocast.tune.inference` runs the same network in NumPy, for
replicas that do not load TensorFlow; a test holds the two equal within 1e-5 for every head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cryptocast.tune import heads
from cryptocast.tune.dataset import HORIZONS, horizon_scale
from cryptocast.tune.features import DEFAULT_GROUPS
from cryptocast.tune.tfsetup import seed_everything, tensorflow

if TYPE_CHECKING:
    import keras

PREDICT_CHUNK = 8192
PATIENCE = 2


@dataclass(frozen=True, slots=True)
class LstmConfig:
    """Every hyper-parameter the sweep searches, plus the seed; stored in the registry as JSON."""

    seq_len: int = 30
    layers: int = 1
    units: int = 32
    dropout: float = 0.1
    lr: float = 1e-3
    batch: int = 256
    epochs: int = 4
    groups: tuple[str, ...] = field(default=DEFAULT_GROUPS)
    seed: int = 7
    head: str = heads.POINT  # what the network forecasts beside the point (stored models before heads: point)

    def __post_init__(self) -> None:
        heads.check(self.head)

    def to_dict(self) -> dict:
        return asdict(self) | {"groups": list(self.groups)}

    @classmethod
    def from_dict(cls, values: dict) -> LstmConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "groups" in known:
            known["groups"] = tuple(known["groups"])
        return cls(**known)


def build(config: LstmConfig, n_features: int, horizons: int = len(HORIZONS)) -> keras.Model:
    tensorflow()
    import keras

    model = keras.Sequential([keras.Input((config.seq_len, n_features))])
    for layer in range(config.layers):
        model.add(keras.layers.LSTM(config.units, return_sequences=layer < config.layers - 1))
        if config.dropout > 0:
            model.add(keras.layers.Dropout(config.dropout))
    model.add(keras.layers.Dense(heads.outputs(config.head, horizons)))
    model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=heads.keras_loss(config.head, horizons))
    return model


def windows(x: np.ndarray, idx: np.ndarray, seq_len: int) -> np.ndarray:
    """(len(idx), seq_len, features) windows ending at each origin."""
    return x[idx[:, None] + np.arange(1 - seq_len, 1)[None, :]]


def forward(model: keras.Model, x: np.ndarray, idx: np.ndarray, seq_len: int) -> np.ndarray:
    """Network outputs for many origins, by direct calls on chunks (no ``predict`` loop)."""
    out = [
        np.asarray(model(windows(x, idx[i : i + PREDICT_CHUNK], seq_len), training=False))
        for i in range(0, len(idx), PREDICT_CHUNK)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


class Trainer:
    """Fits one configuration epoch by epoch, so a sweep can report and stop it between epochs."""

    def __init__(self, config: LstmConfig, x: np.ndarray, targets: np.ndarray, train: np.ndarray) -> None:
        """``targets``: :func:`cryptocast.tune.heads.training_targets` per grid row."""
        tf = tensorflow()
        seed_everything(config.seed)
        self.config = config
        self.horizons = targets.shape[1] // 2
        self.x = np.nan_to_num(x, nan=0.0).astype(np.float32)
        self.model = build(config, x.shape[1], self.horizons)
        x_all = tf.constant(self.x)
        offsets = tf.range(1 - config.seq_len, 1, dtype=tf.int64)
        z_all = tf.constant(targets.astype(np.float32))

        def gather(batch_idx: Any) -> tuple[Any, Any]:  # TensorFlow tensors (untyped)
            return tf.gather(x_all, batch_idx[:, None] + offsets[None, :]), tf.gather(z_all, batch_idx)

        self.data = (
            tf.data.Dataset.from_tensor_slices(train.astype(np.int64))
            .shuffle(len(train), seed=config.seed, reshuffle_each_iteration=True)
            .batch(config.batch)
            .map(gather)
        )
        self.epochs_done = 0

    def epoch(self) -> float:
        """One pass over the training origins; returns the mean training loss."""
        history = self.model.fit(
            self.data, epochs=self.epochs_done + 1, initial_epoch=self.epochs_done, shuffle=False, verbose=0
        )
        self.epochs_done += 1
        return float(history.history["loss"][-1])

    def predict_returns(self, idx: np.ndarray, vol: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted log returns (origins, horizons) and, for a distributional head, their scale."""
        raw = forward(self.model, self.x, idx, self.config.seq_len)
        point, scale = heads.read(self.config.head, raw.astype(np.float64), self.horizons)
        unit = horizon_scale(vol[idx])
        return point * unit, None if scale is None else scale * unit
