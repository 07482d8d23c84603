"""A change's effect on ingestion at scale, measured against the commit before it in the same session.

    .venv/bin/python bench/before_after.py 0bdf25a > bench/results/scale-before-after.json
    .venv/bin/python bench/before_after.py d0fe429~1 --after d0fe429 --only one_node --rounds 2

A shared machine's speed drifts from day to day (2.5× between two runs here), so a figure recorded
on another day is no baseline. This checks out ``BEFORE`` and ``AFTER`` (default: HEAD) into
temporary worktrees and runs ``bench/scale.py`` in each, back to back and interleaved: the cluster
part of one, then of the other, then the one-node part of each. Each run imports its own commit's
code (``bench/scale.py`` puts its repository first on the path, for the Ray workers too). Prints one
JSON document with both commits' results. One run's tail is a few minutes of 150: ``--rounds N``
repeats the whole sequence N times, and each part's entry becomes the list of its N runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = {
    "cluster": ["--only", "cluster", "--no-kill", "--measure", "30"],
    "one_node": ["--only", "one-node"],
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _scale(tree: Path, args: list[str]) -> dict:
    """One run of the commit's own ``bench/scale.py``; its stderr passes through."""
    out = subprocess.run(
        [sys.executable, "bench/scale.py", *args], cwd=tree, check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return json.loads(out)


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
                        run = _scale(trees[side], part_args)[part]
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
    parser.add_argument("--only", choices=sorted(PARTS), help="measure one part only")
    parser.add_argument("--rounds", type=int, default=1, help="times the sequence runs (default: 1)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    parts = {args.only: PARTS[args.only]} if args.only else PARTS
    print(json.dumps(compare(REPO, args.before, args.after, parts, args.rounds), indent=2))


if __name__ == "__main__":
    main()
