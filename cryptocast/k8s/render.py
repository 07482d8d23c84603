"""``cryptocast k8s render``: an overlay built by kustomize, serveConfigV2 filled from the generated config."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from cryptocast.k8s.images import ImageOverrideError, ImageRef, containers, image_override
from cryptocast.k8s.kubectl import kustomize, kustomize_with_images
from cryptocast.k8s.serveconfig import ENV_PREFIX, settings_from_env
from cryptocast.settings import Settings

CONFIG_MAP = "cryptocast-config"
RAY_SERVICE = "cryptocast"
OVERLAYS = "overlays"
# What an overlay carries until the operator sets the registry's digest: it matches no image.
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def default_root() -> Path:
    """The ``k8s/`` directory of the checkout (the working directory's, else the package's)."""
    here = Path.cwd() / "k8s"
    return here if here.is_dir() else Path(__file__).resolve().parents[2] / "k8s"


def overlays(root: Path) -> list[str]:
    return sorted(p.name for p in (root / OVERLAYS).iterdir() if p.is_dir())


def find(docs: list[dict], kind: str, name: str) -> dict:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(hits) != 1:
        raise LookupError(f"expected one {kind} {name}, found {len(hits)}")
    return hits[0]


def build(directory: Path, images: Sequence[str] = ()) -> list[dict]:
    """The manifests of the kustomization in ``directory``, with ``--image`` overrides applied.

    An override must name an image the kustomization renders (kustomize would ignore it silently).
    """
    entries = [image_override(spec) for spec in images]
    names = [entry["name"] for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ImageOverrideError(f"--image given more than once for {', '.join(twice)}")
    docs = kustomize(directory)
    if not entries:
        return docs
    present = sorted({ImageRef.parse(c["image"]).name for doc in docs for c in containers(doc)})
    unknown = [name for name in names if name not in present]
    if unknown:
        raise ImageOverrideError(
            f"--image names {', '.join(unknown)}, which {directory} does not render; its images: "
            + ", ".join(present)
        )
    return kustomize_with_images(directory, entries)


def cluster_env(docs: list[dict]) -> dict[str, str]:
    """The ``CRYPTOCAST_*`` environment every cryptocast container gets (the shared ConfigMap)."""
    return dict(find(docs, "ConfigMap", CONFIG_MAP)["data"])


def with_settings(docs: list[dict], overrides: dict[str, str]) -> list[dict]:
    """Change entries of the shared ConfigMap (``CRYPTOCAST_*``), before serveConfigV2 is generated.

    For running the rendered cluster somewhere other than Kubernetes (a local Ray on loopback, with
    its own port, model store and exchange): the manifests and the Serve config stay consistent.
    """
    unknown = [key for key in overrides if not key.startswith(ENV_PREFIX)]
    if unknown:
        raise ValueError(f"only {ENV_PREFIX}* settings can be set: {unknown}")
    find(docs, "ConfigMap", CONFIG_MAP)["data"].update(overrides)
    return docs


def with_serve_config(docs: list[dict], config: dict) -> list[dict]:
    """Put ``config`` into the RayService as serveConfigV2 (a YAML string, as KubeRay expects)."""
    find(docs, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"] = yaml.safe_dump(config, sort_keys=False)
    return docs


def render(
    overlay: str,
    config_for: Callable[[Settings], dict],
    root: Path | None = None,
    overrides: dict[str, str] | None = None,
    images: Sequence[str] = (),
) -> list[dict]:
    """Manifests of ``overlay``; ``config_for(settings)`` returns the Serve config to embed.

    ``images`` are ``--image`` overrides (:func:`build`); ``overrides`` replaces ConfigMap entries
    first (see :func:`with_settings`).
    """
    base = root or default_root()
    docs = with_settings(build(base / OVERLAYS / overlay, images), overrides or {})
    return with_serve_config(docs, config_for(settings_from_env(cluster_env(docs))))


def placeholder_images(docs: list[dict]) -> list[str]:
    """Names of the images whose digest is still the overlay's placeholder (sorted, each once)."""
    images = [ImageRef.parse(c["image"]) for doc in docs for c in containers(doc)]
    return sorted({i.name for i in images if i.digest == PLACEHOLDER_DIGEST})


def dump(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
