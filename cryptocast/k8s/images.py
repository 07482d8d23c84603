"""Container image references and kustomize's ``images:`` rules, with kustomize's own meaning.

A rule names an image (``name``, matched against the reference without its tag or digest) and
changes it: ``newName`` replaces the name and keeps the tag and digest; ``newTag`` replaces the tag
and drops a digest; ``digest`` replaces the tag and the digest (``name@sha256:...``); both
``newTag`` and ``digest`` give ``name:tag@sha256:...``, where the digest decides what is pulled.
Checked against ``kubectl kustomize`` on these cases; a registry port (``host:5000/name``) is part
of the name, not a tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

RULE_KEYS = frozenset({"name", "newName", "newTag", "digest"})
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageRuleError(ValueError):
    """An ``images:`` rule this renderer refuses; the message says which field and why."""


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
        return bool(DIGEST.match(self.digest))


def check_rule(rule: dict) -> None:
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ImageRuleError(f"images rule for {rule.get('name')!r} has unsupported keys {sorted(unknown)}")
    if not rule.get("name"):
        raise ImageRuleError(f"images rule {rule} has no name")
    if "digest" in rule and not DIGEST.match(str(rule["digest"])):
        raise ImageRuleError(
            f"images rule for {rule['name']!r}: digest must be sha256:<64 hex>, not {rule['digest']!r}"
        )
    if "newTag" in rule and not TAG.match(str(rule["newTag"])):
        raise ImageRuleError(f"images rule for {rule['name']!r}: {rule['newTag']!r} is not a valid tag")
    if not set(rule) & {"newName", "newTag", "digest"}:
        raise ImageRuleError(f"images rule for {rule['name']!r} changes nothing (newName, newTag or digest)")


def apply_rule(reference: str, rule: dict) -> str:
    """``reference`` changed by ``rule`` when the rule names it, else unchanged."""
    image = ImageRef.parse(reference)
    if image.name != rule["name"]:
        return reference
    image = replace(image, name=rule.get("newName", image.name))
    if "newTag" in rule or "digest" in rule:
        image = replace(image, tag=str(rule.get("newTag", "")), digest=rule.get("digest", ""))
    return str(image)
