"""Container image references, and ``--image`` overrides turned into kustomize ``images:`` entries.

Kustomize applies the entries, with its own meaning; this module only parses references (a
registry's port, ``host:5000/name``, is part of the name, never a tag) and checks what an
operator types before it is written into a kustomization.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# The reference grammar's name: an optional registry host (with a port), then lower-case path parts.
_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{{1,5}})?/)?{_PART}(?:/{_PART})*")
MAX_NAME = 255
SHOWN = 80  # characters of an operator's input echoed back in an error


def _shown(text: str) -> str:
    return repr(text[:SHOWN] + ("…" if len(text) > SHOWN else ""))


class ImageOverrideError(ValueError):
    """An ``--image`` override that is refused; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    name: str  # registry and repository, e.g. "registry.example.com:5000/team/app"
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        """Split ``name[:tag][@digest]``; only the last path segment can hold a tag."""
        rest, _, digest = reference.partition("@")
        path, slash, last = rest.rpartition("/")
        last, _, tag = last.partition(":")
        return cls(f"{path}{slash}{last}", tag, digest)

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def pinned(self) -> bool:
        """A digest names one image content; a tag can be moved to another."""
        return bool(DIGEST.fullmatch(self.digest))


def _checked(spec: str, image: ImageRef) -> ImageRef:
    if len(image.name) > MAX_NAME or not NAME.fullmatch(image.name):
        raise ImageOverrideError(f"--image {_shown(spec)}: {_shown(image.name)} is not an image name")
    if image.tag and not TAG.fullmatch(image.tag):
        raise ImageOverrideError(f"--image {_shown(spec)}: {_shown(image.tag)} is not a valid tag")
    if image.digest and not DIGEST.fullmatch(image.digest):
        raise ImageOverrideError(
            f"--image {_shown(spec)}: the digest must be sha256:<64 hex>, not {_shown(image.digest)}"
        )
    return image


def image_override(spec: str) -> dict[str, str]:
    """A kustomize ``images:`` entry from ``kustomize edit set image``'s syntax.

    ``NAME=NEWNAME[:TAG][@DIGEST]`` renames (keeping the tag and digest unless given);
    ``NAME:TAG``, ``NAME@DIGEST`` and ``NAME:TAG@DIGEST`` set the tag or digest of ``NAME``.
    ``NAME`` is the image as the overlay renders it.
    """
    name, renamed, target = spec.partition("=")
    if not renamed:
        image = _checked(spec, ImageRef.parse(spec))
        name, target = image.name, ""
        if not (image.tag or image.digest):
            raise ImageOverrideError(
                f"--image {_shown(spec)} changes nothing: give NAME=NEWNAME, NAME:TAG or NAME@DIGEST"
            )
    else:
        _checked(spec, ImageRef(name))
        image = _checked(spec, ImageRef.parse(target))
    entry = {"name": name}
    if target:
        entry["newName"] = image.name
    if image.tag:
        entry["newTag"] = image.tag
    if image.digest:
        entry["digest"] = image.digest
    return entry


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
