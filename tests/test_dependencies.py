"""Reproducible installs: every import is declared where it belongs (the package's imports in the
runtime dependencies, the tests' and benchmarks' in the test extra at most), nothing declared goes
unused, requirements.lock pins a version of every declared requirement that its range admits (so a
new requirement without `make lock` fails here, not on a clean machine), and the installed set is
consistent."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEPTRY = [sys.executable, "-m", "deptry", "--no-ansi"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_package_imports_exactly_its_runtime_dependencies() -> None:
    # deptry's [tool.deptry] in pyproject.toml: the test extra counts as development dependencies, so
    # a test-only package imported by the product is reported as misplaced (DEP004)
    done = run(*DEPTRY, "cryptocast")
    assert done.returncode == 0, done.stdout + done.stderr


def test_tests_and_benchmarks_import_only_declared_packages() -> None:
    # here the runtime dependencies and the test extra are both allowed (DEP004 off), and a runtime
    # dependency the tests do not import is no finding (DEP002 off); deptry skips tests/ by default
    done = run(*DEPTRY, "tests", "bench", "--exclude", r"\.venv", "--ignore", "DEP002,DEP004")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {
        canonicalize_name(m.group(1)): m.group(2)
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if (m := PIN.match(line))
    }
    declared = [
        Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["test"]
    ]
    unpinned = [str(r) for r in declared if canonicalize_name(r.name) not in pins]
    outside = [
        f"{r} (locked {pins[canonicalize_name(r.name)]})"
        for r in declared
        if canonicalize_name(r.name) in pins and not r.specifier.contains(pins[canonicalize_name(r.name)])
    ]
    assert not unpinned and not outside, f"run make lock: missing {unpinned}, outside its range {outside}"


def test_the_installed_packages_are_consistent() -> None:
    done = run(sys.executable, "-m", "pip", "check")
    assert done.returncode == 0, done.stdout + done.stderr
