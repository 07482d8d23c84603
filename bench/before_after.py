"""A change's effect on ingestion at scale, measured against the commit before it in the same session.

    .venv/bin/python bench/before_after.py 0bdf25a > bench/results/scale-before-after.json
    .venv/bin/python bench/before_after.py b38724e --after c3611f0 --only packed --rounds 3
    .venv/bin/python bench/before_after.py b38724e --after c3611f0 --only packed --rounds 2 --busy 1

A shared machine's speed drifts from day to day (2.5× between two runs here), so a figure recorded
on another day is no baseline. This checks out ``BEFORE`` and ``AFTER`` (default: HEAD) into
temporary worktrees and runs ``bench/scale.py`` in each, back to back and interleaved: the cluster
part of one, then of the other, then the one-node part of each. Each run imports its own commit's
code (``bench/scale.py`` puts its repository first on the path, for the Ray workers too). Prints one
JSON document with both commits' results. The ``packed`` part, never run by default, is the
one-node run of pairs packed in a host alone, half the one-node part's time: it runs the commit's
own ``bench/lib/ingest.py`` with ``bench/scale.py``'s figures (pairs, speed, candles). One run's tail is a few minutes of 150: ``--rounds N``
repeats the whole sequence N times, and each part's entry becomes the list of its N runs.
``--busy N`` keeps N processes spinning a core each for the whole comparison: a change that matters
only when the machine is loaded shows there.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The packed one-node run, for commits whose bench/scale.py cannot run it alone. Ray prints its
# workers' lines on the driver's stdout: they go to stderr, so that stdout holds the one document.
PACKED = """
import asyncio, contextlib, json, sys
sys.path.insert(0, ".")
from bench.lib.ingest import run_live_bench
from bench.scale import ONE_NODE_CANDLES, ONE_NODE_PAIRS, SPEED
from cryptocast.actors.pair import PAIRS_PER_ACTOR
from cryptocast.settings import get_settings
from cryptocast.sql.location import database_url
with contextlib.redirect_stdout(sys.stderr), database_url(get_settings()) as url:
    run = run_live_bench(url, ONE_NODE_PAIRS, SPEED, ONE_NODE_CANDLES, PAIRS_PER_ACTOR)
    result = asyncio.run(run)
print(json.dumps({"packed": result}))
"""
# part -> the Python arguments of one run in the commit's tree; it prints {part: result}
PARTS = {
    "cluster": ["bench/scale.py", "--only", "cluster", "--no-kill", "--measure", "30"],
    "one_node": ["bench/scale.py", "--only", "one-node"],
}
ALL_PARTS = PARTS | {"packed": ["-c", PACKED]}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _run(tree: Path, args: list[str]) -> dict:
    """One run of a part in the commit's tree, with its own code; its stderr passes through."""
    out = subprocess.run(
        [sys.executable, *args], cwd=tree, check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return json.loads(out)


@contextlib.contextmanager
def busy(spinners: int) -> Iterator[list[subprocess.Popen]]:
    """``spinners`` processes, each keeping a core busy, until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(spinners)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def compare(
    repo: Path, before: str, after: str, parts: dict[str, list[str]] = PARTS, rounds: int = 1
) -> dict:
    """Each of ``parts`` measured at ``before``, then at ``after``, part by part, ``rounds`` times,
    each commit in a worktree of ``repo`` that is removed afterwards."""
    commits = {
        "before": _git(repo, "rev-parse", "--short", before),
        "after": _git(repo, "rev-parse", "--short", after),
    }
    result: dict = {"benchmark": "scale, before and after in one session"}
    result |= {side: {"commit": commit} for side, commit in commits.items()}
    with tempfile.TemporaryDirectory(prefix="cryptocast-before-after-") as folder:
        trees = {side: Path(folder) / side for side in commits}
        for side, commit in commits.items():
            _git(repo, "worktree", "add", "--detach", str(trees[side]), commit)
        try:
            for _ in range(rounds):
                for part, part_args in parts.items():
                    for side in commits:
                        run = _run(trees[side], part_args)[part]
                        if rounds == 1:
                            result[side][part] = run
                        else:
                            result[side].setdefault(part, []).append(run)
        finally:
            for tree in trees.values():
                _git(repo, "worktree", "remove", "--force", str(tree))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", help="the commit to compare against")
    parser.add_argument("--after", default="HEAD", help="the commit measured (default: HEAD)")
    parser.add_argument("--only", choices=sorted(ALL_PARTS), help="measure one part only")
    parser.add_argument("--rounds", type=int, default=1, help="times the sequence runs (default: 1)")
    parser.add_argument(
        "--busy", type=int, default=0, help="processes spinning a core each meanwhile (default: 0)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.busy < 0:
        parser.error("--busy cannot be negative")
    parts = {args.only: ALL_PARTS[args.only]} if args.only else PARTS
    with busy(args.busy):
        result = compare(REPO, args.before, args.after, parts, args.rounds)
    print(json.dumps(result | {"busy_processes": args.busy}, indent=2))


if __name__ == "__main__":
    main()
