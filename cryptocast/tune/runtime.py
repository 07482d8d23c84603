"""TensorFlow set-up for training and inference beside live ingestion on a small machine.

The environment must be set before TensorFlow is first imported, so every TF user in this package
imports TensorFlow through :func:`tensorflow`, never directly.
"""

from __future__ import annotations

import os
from functools import cache
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
