"""The subset of kustomize that ``k8s/`` uses, so manifests render and test without kubectl.

Supported, with kustomize's own meaning: ``resources`` (files or directories holding a
``kustomization.yaml``), ``patches`` with an inline JSON 6902 patch and a ``target`` (kind and
name), and ``images`` (``newName``, ``newTag``, ``digest``: :mod:`cryptocast.k8s.images`). Anything
else in a kustomization is refused rather than silently ignored, so ``kubectl apply -k`` and this
renderer never disagree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from cryptocast.k8s.images import ImageRuleError, apply_rule, check_rule

KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_KEYS = frozenset({"apiVersion", "kind", "resources", "patches", "images"})


class KustomizeError(ValueError):
    """A kustomization or patch this renderer cannot apply; the message names the file."""


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: dict[str, Any], parts: list[str]) -> tuple[dict[str, Any] | list[Any], str]:
    node: dict[str, Any] | list[Any] = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def apply_json_patch(doc: dict, ops: list[dict]) -> dict:
    """RFC 6902 ``add``, ``replace`` and ``remove`` (the operations the overlays need)."""
    result = copy.deepcopy(doc)
    for op in ops:
        parent, key = _parent(result, _pointer(op["path"]))
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if key == "-" else int(key)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[index]
            else:
                raise KustomizeError(f"unsupported patch op {kind!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and key not in parent:
                raise KustomizeError(f"replace of missing path {op['path']}")
            parent[key] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[key]
        else:
            raise KustomizeError(f"unsupported patch op {kind!r}")
    return result


def _containers(node: object) -> Iterator[dict]:
    """Every container and init container anywhere in a manifest (pods nest in Ray resources)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict) and "image" in c)
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def containers(doc: dict) -> list[dict]:
    return list(_containers(doc))


def _set_images(path: Path, docs: list[dict], images: list[dict]) -> None:
    for rule in images:
        try:
            check_rule(rule)
        except ImageRuleError as exc:
            raise KustomizeError(f"{path}: {exc}") from None
        for container in (c for doc in docs for c in containers(doc)):
            container["image"] = apply_rule(container["image"], rule)


def _matches(doc: dict, target: dict) -> bool:
    return doc.get("kind") == target.get("kind") and doc["metadata"]["name"] == target.get("name")


def build(directory: Path) -> list[dict]:
    """Every manifest of the kustomization in ``directory``, patched, in declaration order."""
    path = directory / KUSTOMIZATION
    spec = yaml.safe_load(path.read_text())
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported keys {sorted(unknown)}")
    docs: list[dict] = []
    for resource in spec.get("resources", []):
        target = directory / resource
        if target.is_dir():
            docs += build(target)
        else:
            docs += [d for d in yaml.safe_load_all(target.read_text()) if d]
    for patch in spec.get("patches", []):
        hits = [i for i, d in enumerate(docs) if _matches(d, patch["target"])]
        if len(hits) != 1:
            raise KustomizeError(f"{path}: patch target {patch['target']} matched {len(hits)} manifests")
        docs[hits[0]] = apply_json_patch(docs[hits[0]], yaml.safe_load(patch["patch"]))
    _set_images(path, docs, spec.get("images", []))
    return docs
