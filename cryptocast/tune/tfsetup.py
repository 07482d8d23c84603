"""TensorFlow and BLAS set-up for training and inference beside live ingestion on a small machine.

The environment must be set before TensorFlow is first imported, so every TF user in this package
imports TensorFlow through :func:`tensorflow`, never directly. The NumPy forward pass runs its
matrix products single-threaded through :func:`single_threaded_blas`.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType

# One thread per op and one op at a time: a trial gets a fractional CPU, so more threads only thrash.
TF_THREADS = 1
TF_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}


@cache
def tensorflow() -> ModuleType:
    """Import TensorFlow once, quiet and thread-limited."""
    for key, value in TF_ENV.items():
        os.environ.setdefault(key, value)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(TF_THREADS)
    tf.get_logger().setLevel("ERROR")
    return tf


def seed_everything(seed: int) -> None:
    """Same seed, same weights and same batches: training is reproducible."""
    tf = tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# NumPy's bundled OpenBLAS (wheels on Linux/Windows); its thread-local thread count lets one call
# run single-threaded without touching the rest of the process.
_OPENBLAS_GLOB = "libscipy_openblas*"
_OPENBLAS_SET_LOCAL = "openblas_set_num_threads_local"
BLAS_THREADS = 1


@cache
def _openblas_set_local() -> Callable[[int], int] | None:
    """OpenBLAS' per-thread thread setter, or None when NumPy uses another BLAS (then a no-op)."""
    import numpy as np

    for path in sorted((Path(np.__file__).parent.parent / "numpy.libs").glob(_OPENBLAS_GLOB)):
        setter = getattr(ctypes.CDLL(str(path)), _OPENBLAS_SET_LOCAL, None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
            return setter
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block's matrix products on this thread only.

    The LSTM's step loop alternates tiny matmuls with element-wise work; OpenBLAS hands the larger
    ones to its worker threads, which then compete with the loop for the two cores (measured: a
    60-step, 2 × 64 forward pass took 16 ms with the default threads and 1.5 ms with one).
    """
    setter = _openblas_set_local()
    if setter is None:
        yield
        return
    previous = setter(BLAS_THREADS)
    try:
        yield
    finally:
        setter(previous)
