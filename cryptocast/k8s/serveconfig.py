"""The Serve config a cluster runs: ``cryptocast.serve.config`` with the cluster's settings.

One function serves both the renderer (settings read from the overlay's ConfigMap) and the
in-cluster entrypoint (the same ConfigMap as environment), so the serveConfigV2 that is rendered
and the one patched in later are generated the same way.
"""

from __future__ import annotations

from dataclasses import replace

from cryptocast.serve.config import PairEntry, ServeOptions, build_config
from cryptocast.settings import Settings

ENV_PREFIX = "CRYPTOCAST_"
# The Settings fields ServeOptions.from_settings reads; rendering fixes them all, so a developer's
# own CRYPTOCAST_* environment never leaks into the manifests.
SERVE_FIELDS = (
    "data_dir",
    "model_store_uri",
    "exchange",
    "exchange_rest_url",
    "exchange_stream_url",
    "replay_port",
    "bind_host",
    "api_port",
)
# Rendering serves nothing and holds no secrets: dev mode skips the checks of secrets, and this
# placeholder the refusal of open writes on a non-loopback bind (the pods get the real token).
RENDER_TOKEN = "rendering-serves-nothing"


def cluster_options(settings: Settings) -> ServeOptions:
    """Options for the cluster: KubeRay applies serveConfigV2, so the router must not apply too."""
    return replace(ServeOptions.from_settings(settings), manage_config=False)


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings from a ConfigMap's ``CRYPTOCAST_*`` entries; secrets and mode are not needed here."""
    values = {
        name: Settings.model_fields[name].get_default(call_default_factory=True) for name in SERVE_FIELDS
    }
    for key, value in env.items():
        name = key.removeprefix(ENV_PREFIX).lower()
        if key.startswith(ENV_PREFIX) and name in SERVE_FIELDS:
            values[name] = value
    # The store's fsspec backend (s3fs for s3://) is in the cluster's image; rendering opens no
    # store, so it is not checked on the machine that renders.
    store = values.pop("model_store_uri")
    settings = Settings(_env_file=None, mode="dev", api_token=RENDER_TOKEN, **values)
    return settings.model_copy(update={"model_store_uri": store})


def offline_pairs(symbols: list[str]) -> list[PairEntry]:
    """Pairs for a config rendered without a database: ids in the order given, no models yet.

    The in-cluster entrypoint replaces this config with the one generated from ``symbols`` as soon
    as it runs, so these ids only live until the first sync.
    """
    return [PairEntry(symbol_id=i, symbol=s.upper()) for i, s in enumerate(symbols, start=1)]


def offline_config(settings: Settings, symbols: list[str]) -> dict:
    return build_config(offline_pairs(symbols), cluster_options(settings))
