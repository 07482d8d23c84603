"""The kustomize subset and the ``cryptocast k8s render`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cryptocast.k8s.cli import register
from cryptocast.k8s.images import apply_rule
from cryptocast.k8s.kustomize import KustomizeError, apply_json_patch, build
from cryptocast.k8s.render import CONFIG_MAP, PLACEHOLDER_DIGEST
from tests.k8s.manifests import K8S


def test_json_patch_adds_replaces_and_removes_without_touching_the_input() -> None:
    doc = {"spec": {"items": [1, 2], "name": "a"}}
    ops = [
        {"op": "replace", "path": "/spec/name", "value": "b"},
        {"op": "add", "path": "/spec/items/-", "value": 3},
        {"op": "remove", "path": "/spec/items/0"},
        {"op": "add", "path": "/spec/a~1b", "value": True},
    ]
    assert apply_json_patch(doc, ops) == {"spec": {"items": [2, 3], "name": "b", "a/b": True}}
    assert doc == {"spec": {"items": [1, 2], "name": "a"}}
    with pytest.raises(KustomizeError):
        apply_json_patch(doc, [{"op": "replace", "path": "/spec/missing", "value": 1}])


def test_unsupported_kustomization_keys_and_unmatched_patches_are_refused(tmp_path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(KustomizeError, match="namePrefix"):
        build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\npatches:\n- target: {kind: ConfigMap, name: nope}\n  patch: '[]'\n"
    )
    with pytest.raises(KustomizeError, match="matched 0"):
        build(tmp_path)


OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64
# (image in a manifest, rule) -> what `kubectl kustomize` (kustomize v5) writes for it
KUSTOMIZE_IMAGES = [
    ("app:0.1.0", {"newName": "r.example/team/app"}, "r.example/team/app:0.1.0"),
    (f"app@{OLD}", {"newName": "r.example/team/app"}, f"r.example/team/app@{OLD}"),
    ("app:0.1.0", {"newTag": "0.2.0"}, "app:0.2.0"),
    (f"app:0.1.0@{OLD}", {"newTag": "0.2.0"}, "app:0.2.0"),
    ("app:0.1.0", {"digest": NEW}, f"app@{NEW}"),
    (f"app:0.1.0@{OLD}", {"digest": NEW}, f"app@{NEW}"),
    ("app", {"newTag": "0.2.0", "digest": NEW}, f"app:0.2.0@{NEW}"),
    ("app:0.1.0", {"newName": "r.example/team/app", "digest": NEW}, f"r.example/team/app@{NEW}"),
    ("registry.local:5000/app:0.1.0", {"digest": NEW}, "registry.local:5000/app:0.1.0"),  # another name
    (
        "registry.local:5000/app:0.1.0",
        {"name": "registry.local:5000/app", "newTag": "0.2.0"},
        "registry.local:5000/app:0.2.0",
    ),  # a registry's port is part of the name, not a tag
    ("apps:0.1.0", {"digest": NEW}, "apps:0.1.0"),
]


@pytest.mark.parametrize(("image", "rule", "result"), KUSTOMIZE_IMAGES)
def test_images_rules_mean_what_they_mean_to_kustomize(image: str, rule: dict, result: str) -> None:
    assert apply_rule(image, {"name": "app", **rule}) == result


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ("{name: app, digest: 'sha256:abc'}", "digest must be"),
        ("{name: app, newtag: '1'}", "unsupported keys"),
        ("{name: app}", "changes nothing"),
    ],
)
def test_bad_images_rules_are_refused(tmp_path: Path, rule: str, complaint: str) -> None:
    (tmp_path / "kustomization.yaml").write_text(f"resources: []\nimages:\n- {rule}\n")
    with pytest.raises(KustomizeError, match=complaint):
        build(tmp_path)


def test_render_refuses_an_overlay_with_placeholder_digests() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app, ["k8s", "render", "--overlay", "cloud", "--pairs", "BTCUSDT", "--root", str(K8S)]
    )
    assert result.exit_code != 0 and "placeholder digests" in result.output
    assert "postgres" in result.output and PLACEHOLDER_DIGEST not in result.output


def test_overlays_change_what_they_say() -> None:
    local, cloud = build(K8S / "overlays" / "local"), build(K8S / "overlays" / "cloud")
    pvc = {
        o: next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
        for o, docs in (("l", local), ("c", cloud))
    }
    assert pvc["l"]["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["c"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    images = {
        c["image"]
        for d in cloud
        for c in yaml.safe_load(yaml.safe_dump(d))
        .get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
    }
    assert any(i.startswith("registry.example.com/") for i in images)


def test_render_command_prints_every_manifest_with_the_requested_pairs() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app, ["k8s", "render", "--overlay", "local", "--pairs", "btcusdt,SOLUSDT", "--root", str(K8S)]
    )
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    service = next(d for d in docs if d["kind"] == "RayService")
    names = [a["name"] for a in yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]]
    assert names == ["router", "pair_BTCUSDT", "pair_SOLUSDT"] and len(docs) == len(
        build(K8S / "overlays" / "local")
    )
    refused = CliRunner().invoke(app, ["k8s", "render", "--overlay", "moon", "--root", str(K8S)])
    assert refused.exit_code != 0 and "local" in refused.output


def test_set_changes_the_config_map_and_the_serve_config_it_generates() -> None:
    app = typer.Typer()
    register(app)
    args = ["k8s", "render", "--overlay", "local", "--pairs", "BTCUSDT", "--root", str(K8S)]
    loopback = ["--set", "CRYPTOCAST_BIND_HOST=127.0.0.1", "--set", "CRYPTOCAST_API_PORT=18000"]
    result = CliRunner().invoke(app, args + loopback)
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CONFIG_MAP)
    assert config_map["data"]["CRYPTOCAST_BIND_HOST"] == "127.0.0.1"
    service = next(d for d in docs if d["kind"] == "RayService")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    assert config["http_options"] == {"host": "127.0.0.1", "port": 18000}
    assert config["applications"][0]["args"]["host"] == "127.0.0.1"
    refused = CliRunner().invoke(app, [*args, "--set", "RAY_ADDRESS=auto"])
    assert refused.exit_code != 0 and "CRYPTOCAST_" in refused.output
