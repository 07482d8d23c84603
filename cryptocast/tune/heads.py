"""What the LSTM's outputs mean: a point, and optionally a forecast of the spread around it.

At one minute nobody forecasts the price much better than "no change", but the size of the next move
is forecastable. The network therefore has one of three heads, per horizon h, all in units of the
random-walk scale ``vol(t)·sqrt(h)`` (:func:`cryptocast.tune.dataset.horizon_scale`):

* ``point``: the point ``z`` only (MAE); the intervals are scaled by RV30 as before.
* ``qlike``: the point, and the log of the expected realised variance of the next h minutes relative
  to ``vol(t)²·h``, trained with QLIKE (``s·exp(−η) + η``), the loss that is consistent for a
  variance and takes flat, zero-return minutes in stride. Its scale is ``exp(η/2)``.
* ``pinball``: the point, and the 2.5, 10, 90 and 97.5 % quantiles (the ends of the 95 and 80 %
  bands), trained with the pinball loss. They are built from the point outward with softplus steps,
  so they never cross. Its scale is the 80 % band's half-width.

The point is trained by MAE in every head (the distribution terms see it through ``stop_gradient``),
so it still competes against persistence on MAE, while the scale becomes the conformal normaliser
of the bands, which compete against HAR and RV30 on interval score. The raw outputs are one dense
layer, run in NumPy when serving (:mod:`cryptocast.tune.inference`); :func:`read` turns them into
the point and the scale, and :func:`keras_loss` trains them (TensorFlow only while training).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cryptocast.tune.tfsetup import tensorflow

POINT, QLIKE, PINBALL = "point", "qlike", "pinball"
HEADS = (POINT, QLIKE, PINBALL)
# Quantile levels of the pinball head, low to high: the ends of the 95 % and 80 % bands.
QUANTILES = (0.025, 0.1, 0.9, 0.975)
INNER_LOW, INNER_HIGH = 1, 2  # positions of the 80 % band's ends in QUANTILES
# Outputs per horizon after the point: none, one log-variance ratio, one step per quantile.
EXTRA = {POINT: 0, QLIKE: 1, PINBALL: len(QUANTILES)}
LOG_VARIANCE_CLIP = 20.0  # exp(±20): a far wider range than any real ratio, and no overflow


def check(head: str) -> str:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known: {HEADS}")
    return head


def outputs(head: str, horizons: int) -> int:
    """Width of the dense layer: the point per horizon, then the head's extra outputs per horizon."""
    return horizons * (1 + EXTRA[check(head)])


def distributional(head: str) -> bool:
    return EXTRA[check(head)] > 0


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def quantiles(point: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """(origins, QUANTILES, horizons) from the point (origins, horizons) and the raw steps
    (origins, QUANTILES·horizons, level-major): outward from the point, so they never cross."""
    n = point.shape[1]
    step = _softplus(steps.reshape(len(point), len(QUANTILES), n))
    q80_low, q80_high = point - step[:, INNER_LOW], point + step[:, INNER_HIGH]
    return np.stack([q80_low - step[:, 0], q80_low, q80_high, q80_high + step[:, 3]], axis=1)


def read(head: str, raw: np.ndarray, horizons: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(point, scale) in random-walk units from the network's raw outputs; scale is None for ``point``."""
    point = raw[:, :horizons]
    extra = raw[:, horizons:]
    if check(head) == POINT:
        return point, None
    if head == QLIKE:
        return point, np.exp(np.clip(extra, -LOG_VARIANCE_CLIP, LOG_VARIANCE_CLIP) / 2)
    q = quantiles(point, extra)
    return point, (q[:, INNER_HIGH] - q[:, INNER_LOW]) / 2


def training_targets(z: np.ndarray, variance_ratio: np.ndarray) -> np.ndarray:
    """What every head trains on: (origins, 2·horizons), the scaled returns ``z`` then the realised
    variance over each horizon relative to ``vol(t)²·h`` (the ``qlike`` head's target)."""
    return np.concatenate([z, variance_ratio], axis=1).astype(np.float32)


def keras_loss(head: str, horizons: int) -> Callable[[Any, Any], Any]:
    """Per-sample loss for :func:`training_targets`: MAE of the point, plus the head's own term."""
    tensorflow()  # configured before Keras starts TensorFlow's runtime
    import keras

    ops = keras.ops
    check(head)
    n = horizons

    def loss(y_true: Any, y_pred: Any) -> Any:  # Keras tensors (untyped)
        z, variance_ratio = y_true[:, :n], y_true[:, n : 2 * n]
        point = y_pred[:, :n]
        total = ops.mean(ops.abs(z - point), axis=-1)
        if head == QLIKE:
            eta = ops.clip(y_pred[:, n:], -LOG_VARIANCE_CLIP, LOG_VARIANCE_CLIP)
            total = total + ops.mean(variance_ratio * ops.exp(-eta) + eta, axis=-1)
        elif head == PINBALL:
            anchor = ops.stop_gradient(point)
            step = ops.softplus(ops.reshape(y_pred[:, n:], (-1, len(QUANTILES), n)))
            low, high = anchor - step[:, INNER_LOW], anchor + step[:, INNER_HIGH]
            ends = (low - step[:, 0], low, high, high + step[:, 3])
            for level, q in zip(QUANTILES, ends, strict=True):
                diff = z - q
                total = total + ops.mean(ops.maximum(level * diff, (level - 1) * diff), axis=-1)
        return total

    return loss
