"""The trained LSTM in NumPy, fast enough to serve a pair in well under a millisecond per window.

A replica needs no TensorFlow: :class:`NumpyLstm` runs the Keras weights directly. The input
projection ``x @ W + b`` of a layer is one matmul over every time step at once; only ``h @ U`` and
the gate arithmetic stay in the per-step loop, written in place into arrays allocated once per
call. Everything is float32, as Keras computes, and a test holds the output equal to Keras within
1e-5. Gate columns are reordered once from Keras' (i, f, g, o) to (i, f, o, g) and the sigmoid
gates' weights halved, so one ``tanh`` per step covers all four gates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryptocast.tune.tfsetup import single_threaded_blas

GATES = 4
KERAS_ORDER = ("i", "f", "g", "o")
LOOP_ORDER = ("i", "f", "o", "g")  # sigmoid gates first, then the tanh candidate
SIGMOID_GATES = 3
DTYPE = np.float32
# Origins per batch: bounds the (origins, steps, 4·units) input projection to ~100 MB when a whole
# evaluation month is scored at once.
BATCH_ORIGINS = 2048


@dataclass(frozen=True, slots=True)
class _Layer:
    kernel: np.ndarray  # (inputs, 4·units), gates in LOOP_ORDER
    recurrent: np.ndarray  # (units, 4·units)
    bias: np.ndarray  # (4·units,)

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]


def _reorder(w: np.ndarray) -> np.ndarray:
    """Gate blocks along the last axis from Keras' order to the loop's."""
    blocks = np.split(w, GATES, axis=-1)
    return np.ascontiguousarray(
        np.concatenate([blocks[KERAS_ORDER.index(g)] for g in LOOP_ORDER], axis=-1), DTYPE
    )


def _prescale(w: np.ndarray, units: int) -> np.ndarray:
    """Halve the sigmoid gates' columns (exact: a power of two), so that one ``tanh`` over all four
    gates serves them too: sigmoid(v) = 0.5·(1 + tanh(v/2))."""
    w = w.copy()
    w[..., : SIGMOID_GATES * units] *= 0.5
    return w


class NumpyLstm:
    """Stacked Keras LSTM layers followed by the dense head, from ``model.get_weights()``."""

    def __init__(self, weights: list[np.ndarray], layers: int) -> None:
        self.layers = []
        for k in range(layers):
            kernel, recurrent, bias = (_reorder(w) for w in weights[3 * k : 3 * k + 3])
            units = recurrent.shape[0]
            self.layers.append(_Layer(*(_prescale(w, units) for w in (kernel, recurrent, bias))))
        self.dense_kernel = np.asarray(weights[3 * layers], DTYPE)
        self.dense_bias = np.asarray(weights[3 * layers + 1], DTYPE)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Network outputs (origins, outputs) for windows (origins, steps, features)."""
        x = np.asarray(x, DTYPE)
        with single_threaded_blas():
            if len(x) <= BATCH_ORIGINS:
                return self._batch(x)
            return np.concatenate(
                [self._batch(x[i : i + BATCH_ORIGINS]) for i in range(0, len(x), BATCH_ORIGINS)]
            )

    def _batch(self, seq: np.ndarray) -> np.ndarray:
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            seq = self._layer(layer, seq, keep_sequence=k < last)
        return seq @ self.dense_kernel + self.dense_bias

    @staticmethod
    def _layer(layer: _Layer, seq: np.ndarray, keep_sequence: bool) -> np.ndarray:
        """One LSTM layer; the whole output sequence for a following layer, else the last state."""
        origins, steps, _ = seq.shape
        u = layer.units
        projected = seq @ layer.kernel  # (origins, steps, 4u): every step's input term in one matmul
        projected += layer.bias
        h = np.zeros((origins, u), DTYPE)
        c = np.zeros((origins, u), DTYPE)
        gates = np.empty((origins, GATES * u), DTYPE)
        tanh_c = np.empty_like(c)
        out = np.empty((origins, steps, u), DTYPE) if keep_sequence else None
        i, f, o, g = (gates[:, n * u : (n + 1) * u] for n in range(GATES))
        sigmoid = gates[:, : SIGMOID_GATES * u]
        for step in range(steps):
            np.matmul(h, layer.recurrent, out=gates)
            gates += projected[:, step]
            np.tanh(gates, out=gates)  # the candidate g, and the halved sigmoid gates
            sigmoid += 1.0
            sigmoid *= 0.5
            c *= f
            g *= i
            c += g
            np.tanh(c, out=tanh_c)
            np.multiply(o, tanh_c, out=h)
            if out is not None:
                out[:, step] = h
        return out if out is not None else h


def numpy_forward(weights: list[np.ndarray], layers: int, x: np.ndarray) -> np.ndarray:
    """One-off forward pass (tests, scripts); serving keeps a :class:`NumpyLstm` instead."""
    return NumpyLstm(weights, layers)(x)
