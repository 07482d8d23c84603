"""Trial threads run below the live paths: under the idle policy and ten steps nicer than Ray's workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, os, threading
from cryptocast.tune.sweep import lower_priority
def niceness(tid): return os.getpriority(os.PRIO_PROCESS, tid)
ready, hold = threading.Event(), threading.Event()
def old_thread():
    ready.set(); hold.wait()
before = threading.Thread(target=old_thread); before.start(); ready.wait()
lower_priority()
lower_priority()  # a reused trial process calls it again: no further change
later = {}
after = threading.Thread(target=lambda: later.update(nice=niceness(0), policy=os.sched_getscheduler(0)))
after.start(); after.join()
tids = [int(t) for t in os.listdir(f"/proc/{os.getpid()}/task")]
policies = {os.sched_getscheduler(t) for t in tids} | {later["policy"]}
print(json.dumps({"threads": sorted({niceness(t) for t in tids}), "later": later["nice"],
                  "idle_policy": policies == {os.SCHED_IDLE}}))
hold.set(); before.join()
"""


@pytest.mark.parametrize(("workers", "start", "expected"), [("0", 0, 10), ("15", 0, 19), ("0", 12, 12)])
def test_every_thread_old_and_new_is_niced_below_the_workers(workers: str, start: int, expected: int) -> None:
    """``workers``: RAY_worker_niceness; ``start``: the trial process's niceness before (a thread already
    nicer than the target keeps its own)."""
    # Absolute, not inherited: the test process itself may run niced (a sweep run in it earlier).
    start_at = f"import os; os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)); os.setpriority(os.PRIO_PROCESS, 0, {start})\n"
    command = [sys.executable, "-c", start_at + PROBE]
    env = {"RAY_worker_niceness": workers, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == {"threads": [expected], "later": expected, "idle_policy": True}
