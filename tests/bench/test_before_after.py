"""``bench/before_after.py`` on a repository of two commits whose ``bench/scale.py`` prints its own
commit's mark: each side runs its own code, part by part in turn, and no worktree is left behind.

Why: the comparison is only worth its JSON if the "before" figures come from the "before" code, and
interleaving is what makes the two sides share the machine's state.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.before_after import busy, compare

FAKE_SCALE = """import json, sys
part = sys.argv[2]
with open({log!r}, "a") as log:
    log.write(f"{{part}} {mark}\\n")
print(json.dumps({{part: {{"mark": "{mark}"}}}}))
"""
PARTS = {
    "cluster": ["bench/scale.py", "--only", "cluster"],
    "one_node": ["bench/scale.py", "--only", "one_node"],
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo: Path, mark: str, log: Path) -> str:
    (repo / "bench").mkdir(exist_ok=True)
    (repo / "bench" / "scale.py").write_text(FAKE_SCALE.format(log=str(log), mark=mark))
    _git(repo, "add", "bench/scale.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", mark)
    return _git(repo, "rev-parse", "--short", "HEAD")


def test_each_side_runs_its_own_commit_part_by_part_and_leaves_no_worktree(tmp_path: Path) -> None:
    repo, log = tmp_path / "repo", tmp_path / "runs.log"
    repo.mkdir()
    _git(repo, "init", "-q")
    old = _commit(repo, "old", log)
    new = _commit(repo, "new", log)

    result = compare(repo, old, "HEAD", PARTS)

    assert result["before"] == {"commit": old, "cluster": {"mark": "old"}, "one_node": {"mark": "old"}}
    assert result["after"] == {"commit": new, "cluster": {"mark": "new"}, "one_node": {"mark": "new"}}
    assert log.read_text().split("\n")[:-1] == ["cluster old", "cluster new", "one_node old", "one_node new"]
    assert _git(repo, "worktree", "list").count("\n") == 0  # the main tree only


def test_rounds_repeat_the_sequence_and_list_each_parts_runs(tmp_path: Path) -> None:
    repo, log = tmp_path / "repo", tmp_path / "runs.log"
    repo.mkdir()
    _git(repo, "init", "-q")
    old = _commit(repo, "old", log)
    _commit(repo, "new", log)

    result = compare(repo, old, "HEAD", {"one_node": PARTS["one_node"]}, rounds=2)

    assert result["before"]["one_node"] == [{"mark": "old"}, {"mark": "old"}]
    assert result["after"]["one_node"] == [{"mark": "new"}, {"mark": "new"}]
    assert log.read_text().split("\n")[:-1] == ["one_node old", "one_node new"] * 2


def test_busy_spinners_run_inside_the_block_and_are_gone_after() -> None:
    with busy(2) as procs:
        assert len(procs) == 2
        assert all(proc.poll() is None for proc in procs)
    assert all(proc.poll() is not None for proc in procs)
