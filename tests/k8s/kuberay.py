"""KubeRay's published CRDs (vendored in ``k8s/schemas/``) as strict JSON Schema.

The API server silently prunes an unknown field of a custom resource, so a misspelt field would be
dropped without a word; ``kubectl apply --validate=strict`` refuses it, and so do these schemas:
every object schema that lists its properties and neither keeps unknown fields
(``x-kubernetes-preserve-unknown-fields``) nor says what extra keys hold gets
``additionalProperties: false``. OpenAPI's ``nullable`` becomes a ``null`` type. CEL rules
(``x-kubernetes-validations``) and formats are left to the API server.
"""

from __future__ import annotations

import json
from functools import cache

from tests.k8s.manifests import K8S

SCHEMAS = K8S / "schemas"
VERSION = "v1"
CRDS = {"RayCluster": "ray.io_rayclusters.json", "RayService": "ray.io_rayservices.json"}
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def strict(schema: dict) -> dict:
    """``schema`` (OpenAPI v3, as in a CRD) with unknown fields refused and ``nullable`` as JSON Schema."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if "items" in out:
        out["items"] = strict(out["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def crd(kind: str) -> dict:
    """The vendored CustomResourceDefinition of ``kind``."""
    definition = json.loads((SCHEMAS / CRDS[kind]).read_text())
    assert definition["spec"]["names"]["kind"] == kind, CRDS[kind]
    return definition


def api_version(kind: str) -> str:
    return f"{crd(kind)['spec']['group']}/{VERSION}"


@cache
def schema(kind: str) -> dict:
    """The strict JSON Schema of ``kind`` at ``ray.io/v1``."""
    (version,) = (v for v in crd(kind)["spec"]["versions"] if v["name"] == VERSION)
    return {"$schema": DRAFT, **strict(version["schema"]["openAPIV3Schema"])}
