"""The model store is any fsspec URI: models saved, listed, loaded and pruned through a non-local
filesystem (fsspec's in-process ``memory://``) exactly as through a directory, and a scheme whose
backend is not installed refused at start with one line that names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import fsspec
import pytest

from cryptocast.settings import ConfigurationError, Settings
from cryptocast.tune import registry
from cryptocast.tune.baseline import ensure_baseline
from tests.tune.tune_data import btc, load_pair


async def test_models_round_trip_through_a_non_local_filesystem(db) -> None:
    root = f"memory://models-{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")
    store = registry.ModelStore(root)
    sid = await load_pair(db, "BTCUSDT", btc(0.5, offset_days=2))

    champion = await ensure_baseline(db, store, sid)
    predictor = registry.load(champion)
    shadows = [
        await registry.register(db, store, sid, predictor, registry.SHADOW, f"copy {n}") for n in (1, 2)
    ]

    listed = await registry.records(db, sid)
    assert [r.version for r in listed] == [3, 2, 1]
    assert all(r.artifact_uri and r.artifact_uri.startswith("memory://") for r in listed)
    assert sorted(memory.ls(f"{root}/BTCUSDT", detail=False)) == sorted(
        fsspec.core.url_to_fs(r.artifact_uri)[1] for r in listed if r.artifact_uri
    )
    for record in (champion, *shadows):
        assert registry.load(record).to_bytes() == predictor.to_bytes()

    assert await registry.prune(db, sid, keep=1) == 1  # the older shadow; the champion is kept
    assert shadows[0].artifact_uri is not None and not memory.exists(shadows[0].artifact_uri)
    assert len(memory.ls(f"{root}/BTCUSDT", detail=False)) == 2

    corrupt = bytearray(memory.cat_file(champion.artifact_uri))
    corrupt[len(corrupt) // 2] ^= 0xFF
    memory.pipe_file(champion.artifact_uri, bytes(corrupt))
    with pytest.raises(registry.CorruptArtifact):
        registry.load(champion)


def test_gs_without_its_backend_names_the_extra() -> None:
    # A fresh interpreter in which gcsfs cannot be imported, whether or not this venv has it.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["gcsfs"] = None
        from cryptocast.settings import ConfigurationError, Settings
        from cryptocast.tune.registry import ModelStore
        for attempt in (lambda: Settings(model_store_uri="gs://bucket/models"),
                        lambda: ModelStore("gs://bucket/models")):
            try:
                attempt()
            except ConfigurationError as exc:
                print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = "gs:// needs the gcp extra: pip install 'cryptocast[gcp]'"
    assert done.stdout.splitlines() == [expected, expected]


def test_an_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'nosuch' is not a storage scheme") as raised:
        Settings(model_store_uri="nosuch://user:secret@bucket/models")
    assert "secret" not in str(raised.value)  # the scheme is echoed, never the rest of the URI
    with pytest.raises(ConfigurationError, match="'nosuch' is not a storage scheme"):
        registry.ModelStore("simplecache::nosuch://bucket/models")
    assert Settings(model_store_uri="memory://models").model_store == "memory://models"
