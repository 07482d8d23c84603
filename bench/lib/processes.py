"""Stopping a group of processes the way ``ray stop`` does, for the benchmarks' own clusters.

Light on purpose (psutil only): :mod:`bench.lib.gcs_ft`'s short driver subprocesses import it.
"""

from __future__ import annotations

from contextlib import suppress

import psutil

STOP_GRACE_S = 10.0  # from SIGTERM to SIGKILL


def terminate(processes: list[psutil.Process], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, wait up to ``grace_s``, SIGKILL what is left (``ray stop``'s order)."""
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace_s)
