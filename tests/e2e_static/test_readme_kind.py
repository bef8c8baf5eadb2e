"""The README's kind + Helm block, checked as far as it can be without Docker and kind.

What is checked: the images it builds are the ones it loads into the cluster the config names and the
ones it gives the chart; every --set exists in the chart's schema; namespace ml is created before it
is used and every namespaced command names it; the model volume manifest is valid and is what the
block's commands expect; the export command really runs here and its manifest is admitted by the real
kube-apiserver (server-side dry run), as are the samples.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modeldeploy_sandbox.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VOLUME = ROOT / "e2e" / "model-volume.yaml"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _block() -> str:
    section = README.read_text().split("### kind + Helm\n", 1)[1].split("\n### ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def _commands() -> list[list[str]]:
    """The block's commands, continuation lines joined, comments dropped, pipelines split."""
    text = _block().replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while "|" in words:
            at = words.index("|")
            commands.append(words[:at])
            words = words[at + 1:]
        if words:
            commands.append(words)
    return commands


def _option(words: list[str], *names: str) -> str | None:
    for index, word in enumerate(words):
        if word in names:
            return words[index + 1]
        for name in names:
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def _sets(words: list[str]) -> dict[str, str]:
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--set")


def test_images_are_built_from_the_dockerfiles_loaded_into_the_cluster_and_given_to_the_chart() -> None:
    commands = _commands()
    builds = {_option(c, "-f"): _option(c, "-t") for c in commands if c[:2] == ["docker", "build"]}
    assert set(builds) == {"operator/Dockerfile", "runtime-image/Dockerfile"}
    assert all((ROOT / dockerfile).is_file() for dockerfile in builds if dockerfile)
    operator_image, modelserver_image = builds["operator/Dockerfile"], builds["runtime-image/Dockerfile"]
    assert operator_image and modelserver_image

    config = yaml.safe_load((ROOT / "e2e" / "kind-config.yaml").read_text())
    create = next(c for c in commands if c[:3] == ["kind", "create", "cluster"])
    assert _option(create, "--config") == "e2e/kind-config.yaml" and _option(create, "--name") is None
    load = next(c for c in commands if c[:3] == ["kind", "load", "docker-image"])
    assert _option(load, "--name") == config["name"]
    assert [w for w in load[3:] if not w.startswith("--") and w != config["name"]] == [operator_image,
                                                                                        modelserver_image]

    helm = next(c for c in commands if c[:2] == ["helm", "install"])
    values = _sets(helm)
    assert f"{values['image.repository']}:{values['image.tag']}" == operator_image
    assert values["image.pullPolicy"] == "Never"  # loaded into kind, never pulled
    assert values["runtimeImages.modelserver"] == values["runtimeImages.modelserverGpu"] == modelserver_image
    schema = json.loads((ROOT / "charts" / "modeldeploy" / "values.schema.json").read_text())
    for key in values:
        node: dict[str, Any] = schema
        for part in key.split("."):
            assert part in node.get("properties", {}), f"--set {key}: not in values.schema.json"
            node = node["properties"][part]
    assert "--wait" in helm and _option(helm, "--namespace", "-n") == "modeldeploy-system"

    volume = [doc for doc in yaml.safe_load_all(VOLUME.read_text()) if doc]
    pod = next(doc for doc in volume if doc["kind"] == "Pod")
    assert pod["spec"]["containers"][0]["image"] == modelserver_image  # the image has tar; it is in kind


def test_namespace_ml_is_created_first_and_every_namespaced_command_names_it() -> None:
    commands = _commands()
    kubectl = [c for c in commands if c[0] == "kubectl"]
    assert kubectl[0] == ["kubectl", "create", "namespace", "ml"]
    for command in kubectl[1:]:
        assert _option(command, "-n", "--namespace") == "ml", f"no -n ml: {shlex.join(command)}"
    helm = next(c for c in commands if c[:2] == ["helm", "install"])
    assert "--create-namespace" in helm


def test_the_model_volume_is_valid_and_matches_the_commands() -> None:
    documents = [doc for doc in yaml.safe_load_all(VOLUME.read_text()) if doc]
    assert sorted(doc["kind"] for doc in documents) == ["PersistentVolumeClaim", "Pod"]
    for doc in documents:
        kubernetes_validate.validate({**doc, "metadata": {**doc["metadata"], "namespace": "ml"}}, "1.30",
                                     strict=True)
    claim = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    pod = next(doc for doc in documents if doc["kind"] == "Pod")
    commands = _commands()
    export = next(c for c in commands if c[1:3] == ["export", "torch.nn:Linear"])
    assert _option(export, "--uri-prefix") == f"pvc://{claim}"
    wait = next(c for c in commands if c[:2] == ["kubectl", "wait"])
    assert f"pod/{pod['metadata']['name']}" in wait
    untar = next(c for c in commands if c[:2] == ["kubectl", "exec"])
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert pod["metadata"]["name"] in untar and untar[untar.index("-C") + 1] == mount["mountPath"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim


def _dry_run(cluster: LocalCluster, manifest: Path, namespace: str) -> subprocess.CompletedProcess[str]:
    kubectl = cluster.control_plane.binaries.path("kubectl")
    return subprocess.run([str(kubectl), "--kubeconfig", str(cluster.control_plane.kubeconfig), "apply",
                           "--dry-run=server", "-n", namespace, "-f", str(manifest)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """One namespace for every dry run of this module (nothing is created in it)."""
    name = "readme-kind"
    cluster.create_namespace(name)
    yield name
    cluster.delete_namespace(name, until_gone=False)


def test_the_export_command_runs_and_its_manifest_is_admitted(cluster: LocalCluster, namespace: str,
                                                             tmp_path: Path) -> None:
    commands = _commands()
    export = next(c for c in commands if c[1:3] == ["export", "torch.nn:Linear"])
    assert export[0] == ".venv/bin/modeldeploy"
    argv = [str(Path(sys.executable).parent / "modeldeploy"), *export[1:]]  # this venv's .venv/bin/modeldeploy
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / _option(export, "--manifest")  # type: ignore[operator]
    document = yaml.safe_load(manifest.read_text())
    assert document["spec"]["model"]["uri"] == "pvc://models/linear/1/model.onnx"
    assert DIGEST.match(document["spec"]["model"]["digest"])
    # What the tar command copies: model_repository/linear, with the path the URI names inside it.
    tar = next(c for c in commands if c[0] == "tar")
    assert tar[1:3] == ["-C", "model_repository"] and tar[-1] == "linear"
    assert (tmp_path / "model_repository" / "linear" / "1" / "model.onnx").is_file()
    applied = next(c for c in commands if c[:2] == ["kubectl", "apply"] and _option(c, "-f") == manifest.name)
    assert applied
    admitted = _dry_run(cluster, manifest, namespace)
    assert admitted.returncode == 0, admitted.stderr


@pytest.mark.parametrize("sample", sorted((ROOT / "samples").glob("*.yaml")), ids=lambda path: path.name)
def test_samples_are_admitted_by_the_real_apiserver(sample: Path, cluster: LocalCluster, namespace: str,
                                                    tmp_path: Path) -> None:
    document = yaml.safe_load(sample.read_text())
    assert DIGEST.match(document["spec"]["model"].get("digest", "sha256:" + "0" * 64))
    document["metadata"]["namespace"] = namespace
    copy = tmp_path / sample.name
    copy.write_text(yaml.safe_dump(document))
    admitted = _dry_run(cluster, copy, namespace)
    assert admitted.returncode == 0, admitted.stderr


def _documented_model_deployments() -> list[tuple[str, dict[str, Any]]]:
    """Every whole ModelDeployment in a ```yaml block of README.md and docs/*.md."""
    found = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for body in re.findall(r"^ *```yaml\n(.*?)^ *```$", page.read_text(), flags=re.MULTILINE | re.DOTALL):
            with contextlib.suppress(yaml.YAMLError):
                document = yaml.safe_load(body)
                if isinstance(document, dict) and document.get("kind") == "ModelDeployment":
                    found.append((page.name, document))
    return found


def test_every_documented_model_deployment_is_admitted(cluster: LocalCluster, namespace: str,
                                                        tmp_path: Path) -> None:
    documented = _documented_model_deployments()
    assert "README.md" in {page for page, _ in documented}
    for index, (page, document) in enumerate(documented):
        document["metadata"]["namespace"] = namespace
        copy = tmp_path / f"{index}.yaml"
        copy.write_text(yaml.safe_dump(document))
        admitted = _dry_run(cluster, copy, namespace)
        assert admitted.returncode == 0, f"{page}: {admitted.stderr}"
