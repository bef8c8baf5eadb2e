"""render_deployment: schema-valid Deployments with the runtime contract, GPU placement and hardening."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.observe import deployment_state
from modeldeploy.render import (
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SPEC_HASH_ANNOTATION,
    Owner,
    RuntimeImages,
    render_deployment,
    revision_name,
    spec_hash,
)

from .conftest import DIGEST, SpecFactory

K8S_VERSION = "1.30"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1a"]}]},
]}}}

CASES: dict[str, dict[str, Any]] = {
    "cpu-onnx": {},
    "cpu-onnx-batching": {"runtime": {"batching": {"maxBatchSize": 16, "maxQueueDelayMicroseconds": 500}}},
    "gpu-onnx-mig": {"resources": {"gpu": {"count": 2, "resourceName": "nvidia.com/mig-1g.10gb",
                                           "product": "NVIDIA-A100-SXM4-80GB"}}},
    "triton-onnx-cpu": {"runtime": {"kind": "triton"}},
    "triton-tensorrt-gpu-batching": {
        "model": {"format": "tensorrt_plan", "uri": "s3://models/bert/1/model.plan"},
        "runtime": {"kind": "triton", "batching": {"maxBatchSize": 32, "preferredBatchSizes": [8, 16]}},
        "resources": {"gpu": {"product": "NVIDIA-A100-SXM4-80GB"}, "runtimeClassName": "nvidia"},
    },
    "triton-torchscript-gpu": {"model": {"format": "torchscript"}, "runtime": {"kind": "triton"},
                               "resources": {"gpu": {}}},
    "pvc-unverified": {"model": {"uri": "pvc://model-store/resnet/1/model.onnx", "digest": None,
                                 "allowUnverified": True}},
    "placement": {"resources": {
        "nodeSelector": {"pool": "inference"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": AFFINITY,
        "runtimeClassName": "nvidia",
        "gpu": {"count": 1},
    }},
    "env-image-override": {"runtime": {"image": "registry.example.com/modelserver:dev",
                                       "env": [{"name": "OMP_NUM_THREADS", "value": "4"}]}},
}


def render(spec: ModelDeploymentSpec, owner: Owner, images: RuntimeImages, *, role: str = "stable",
           replicas: int | None = 2) -> dict[str, Any]:
    digest = spec_hash(spec)
    return render_deployment(spec, name="resnet", namespace="ml", revision=revision_name("resnet", digest),
                             spec_hash=digest, role=role,  # type: ignore[arg-type]
                             replicas=replicas, owner=owner, images=images)


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = pod(deployment)["containers"]
    assert container["name"] == "server"
    return container


def fetch(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = pod(deployment)["initContainers"]
    assert container["name"] == "fetch"
    return container


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("replicas", [3, None])
def test_validates_against_kubernetes_schema(case: str, replicas: int | None, render_spec: SpecFactory,
                                             render_owner: Owner, render_images: RuntimeImages) -> None:
    deployment = render(render_spec(CASES[case]), render_owner, render_images, replicas=replicas)
    kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_replicas_omitted_when_hpa_owns_them(render_spec: SpecFactory, render_owner: Owner,
                                            render_images: RuntimeImages) -> None:
    assert "replicas" not in render(render_spec(), render_owner, render_images, replicas=None)["spec"]
    assert render(render_spec(), render_owner, render_images, replicas=0)["spec"]["replicas"] == 0


def test_labels_selector_and_owner(render_spec: SpecFactory, render_owner: Owner,
                                   render_images: RuntimeImages) -> None:
    spec = render_spec()
    revision = revision_name("resnet", spec_hash(spec))
    deployment = render(spec, render_owner, render_images, role="canary")
    meta = deployment["metadata"]
    assert meta["name"] == revision and meta["namespace"] == "ml"
    assert meta["labels"] == {MANAGED_BY_LABEL: "modeldeploy", NAME_LABEL: "resnet",
                              REVISION_LABEL: revision, ROLE_LABEL: "canary"}
    assert meta["annotations"][SPEC_HASH_ANNOTATION] == spec_hash(spec)
    assert deployment["spec"]["selector"] == {"matchLabels": {NAME_LABEL: "resnet", REVISION_LABEL: revision}}
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert ROLE_LABEL not in template_labels
    assert template_labels == {MANAGED_BY_LABEL: "modeldeploy", NAME_LABEL: "resnet", REVISION_LABEL: revision}
    assert meta["ownerReferences"] == [{
        "apiVersion": "serving.modeldeploy.dev/v1alpha1", "kind": "ModelDeployment", "name": "resnet",
        "uid": render_owner.uid, "controller": True, "blockOwnerDeletion": True}]
    assert deployment["spec"]["revisionHistoryLimit"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_a_born_serving_revision_labels_its_pods_for_traffic(render_spec: SpecFactory, render_owner: Owner,
                                                             render_images: RuntimeImages) -> None:
    spec = render_spec()
    digest = spec_hash(spec)
    born = render_deployment(spec, name="resnet", namespace="ml", revision=revision_name("resnet", digest),
                             spec_hash=digest, role="canary", replicas=None, owner=render_owner,
                             images=render_images, born_serving=True)
    plain = render(spec, render_owner, render_images, role="canary", replicas=None)
    born_labels = born["spec"]["template"]["metadata"]["labels"]
    assert born_labels == {**plain["spec"]["template"]["metadata"]["labels"], "modeldeploy.dev/traffic": "serving"}
    assert born["spec"]["selector"] == plain["spec"]["selector"]  # the selector never has it: pods may lose it
    # What the reconciler keeps for the Deployment's life (it reads it back, never flips it).
    assert deployment_state(born).born_serving and not deployment_state(plain).born_serving


def test_promotion_changes_no_pod_template(render_spec: SpecFactory, render_owner: Owner,
                                           render_images: RuntimeImages) -> None:
    spec = render_spec()
    canary = render(spec, render_owner, render_images, role="canary")
    stable = render(spec, render_owner, render_images, role="stable")
    assert canary["spec"]["template"] == stable["spec"]["template"]
    assert canary["spec"]["selector"] == stable["spec"]["selector"]


@pytest.mark.parametrize("kind,uid", [("onnx", 65532), ("triton", 1000)])
def test_security_context(kind: str, uid: int, render_spec: SpecFactory, render_owner: Owner,
                          render_images: RuntimeImages) -> None:
    deployment = render(render_spec({"runtime": {"kind": kind}}), render_owner, render_images)
    spec = pod(deployment)
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
                                       "fsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["automountServiceAccountToken"] is False
    assert spec["terminationGracePeriodSeconds"] == 30
    for container in spec["initContainers"] + spec["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    # Bounded by the model's maxSize (default 4Gi) plus 64Mi of headroom; /tmp by 1Gi.
    assert volumes["model-repository"] == {"name": "model-repository", "emptyDir": {"sizeLimit": "4160Mi"}}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}
    mounts = {mount["mountPath"]: mount for mount in server(deployment)["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True and "/tmp" in mounts


def test_fetch_init_container(render_spec: SpecFactory, render_owner: Owner,
                              render_images: RuntimeImages) -> None:
    spec = render_spec({"model": {"name": "resnet50", "version": 3},
                        "runtime": {"image": "example.com/custom:1"}, "resources": {"gpu": {}}})
    container = fetch(render(spec, render_owner, render_images))
    assert container["image"] == render_images.modelserver  # CPU image, never the override
    assert container["args"] == ["fetch", "https://models.example.com/resnet/1/model.onnx", "--into", "/models",
                                 "--model", "resnet50", "--version", "3", "--format", "onnx",
                                 "--digest", DIGEST, "--max-bytes", str(4 * 2**30)]
    assert {"name": "model-repository", "mountPath": "/models"} in container["volumeMounts"]
    # The server's cpu/memory (no extra pod capacity), never its GPUs; the emptyDirs' ephemeral storage.
    assert container["resources"] == {"requests": {"ephemeral-storage": "5184Mi", "cpu": "1", "memory": "2Gi"}}


def test_fetch_unverified_defaults_model_name_to_resource_name(render_spec: SpecFactory, render_owner: Owner,
                                                               render_images: RuntimeImages) -> None:
    spec = render_spec({"model": {"digest": None, "allowUnverified": True}})
    args = fetch(render(spec, render_owner, render_images))["args"]
    assert args[args.index("--model") + 1] == "resnet"
    assert "--allow-unverified" in args and "--digest" not in args


def test_pvc_uri_mounts_the_claim_read_only(render_spec: SpecFactory, render_owner: Owner,
                                            render_images: RuntimeImages) -> None:
    deployment = render(render_spec({"model": {"uri": "pvc://model-store/resnet/1/model.onnx"}}),
                        render_owner, render_images)
    assert {"name": "model-source", "persistentVolumeClaim": {"claimName": "model-store", "readOnly": True}} \
        in pod(deployment)["volumes"]
    assert {"name": "model-source", "mountPath": "/mnt/pvc/model-store", "readOnly": True} \
        in fetch(deployment)["volumeMounts"]
    assert all(mount["name"] != "model-source" for mount in server(deployment)["volumeMounts"])


def test_no_pvc_volume_for_other_schemes(render_spec: SpecFactory, render_owner: Owner,
                                         render_images: RuntimeImages) -> None:
    deployment = render(render_spec(), render_owner, render_images)
    assert [volume["name"] for volume in pod(deployment)["volumes"]] == ["model-repository", "tmp"]


def test_onnx_cpu_server(render_spec: SpecFactory, render_owner: Owner, render_images: RuntimeImages) -> None:
    container = server(render(render_spec(), render_owner, render_images))
    assert container["image"] == render_images.modelserver
    assert "command" not in container
    assert container["args"] == ["serve", "--model-repository", "/models", "--http-port", "8000",
                                 "--grpc-port", "8001", "--metrics-port", "8002"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8002, "protocol": "TCP"}]
    assert container["resources"] == {"requests": {"ephemeral-storage": "5184Mi", "cpu": "1", "memory": "2Gi"}}


def test_onnx_gpu_server_with_batching(render_spec: SpecFactory, render_owner: Owner,
                                       render_images: RuntimeImages) -> None:
    spec = render_spec({"runtime": {"batching": {"maxBatchSize": 32, "maxQueueDelayMicroseconds": 2000}},
                        "resources": {"limits": {"memory": "4Gi"},
                                      "gpu": {"count": 2, "resourceName": "nvidia.com/mig-1g.10gb"}}})
    container = server(render(spec, render_owner, render_images))
    assert container["image"] == render_images.modelserver_gpu
    assert container["args"][-6:] == ["--device", "cuda", "--max-batch-size", "32",
                                      "--max-queue-delay-us", "2000"]
    assert container["resources"] == {
        "requests": {"ephemeral-storage": "5184Mi", "cpu": "1", "memory": "2Gi", "nvidia.com/mig-1g.10gb": "2"},
        "limits": {"memory": "4Gi", "nvidia.com/mig-1g.10gb": "2"}}


def test_probes(render_spec: SpecFactory, render_owner: Owner, render_images: RuntimeImages) -> None:
    for kind in ("onnx", "triton"):
        container = server(render(render_spec({"runtime": {"kind": kind}}), render_owner, render_images))
        assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        startup = container["startupProbe"]
        assert startup["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # minutes to load a model


def test_env_and_image_override(render_spec: SpecFactory, render_owner: Owner,
                                render_images: RuntimeImages) -> None:
    container = server(render(render_spec(CASES["env-image-override"]), render_owner, render_images))
    assert container["image"] == "registry.example.com/modelserver:dev"
    assert container["env"] == [{"name": "OMP_NUM_THREADS", "value": "4"}]


def _config_of(deployment: dict[str, Any]) -> str:
    args = fetch(deployment)["args"]
    config: str = args[args.index("--config-pbtxt") + 1]
    return config


@pytest.mark.parametrize("model_format,platform", [
    ("onnx", "onnxruntime_onnx"), ("tensorrt_plan", "tensorrt_plan"), ("torchscript", "pytorch_libtorch")])
def test_triton_server_and_config(model_format: str, platform: str, render_spec: SpecFactory,
                                  render_owner: Owner, render_images: RuntimeImages) -> None:
    spec = render_spec({"model": {"format": model_format, "name": "bert_large"},
                        "runtime": {"kind": "triton", "batching": {"maxBatchSize": 64,
                                    "maxQueueDelayMicroseconds": 500, "preferredBatchSizes": [16, 32]}},
                        "resources": {"gpu": {}}})
    deployment = render(spec, render_owner, render_images)
    container = server(deployment)
    assert container["image"] == render_images.triton
    assert container["command"] == ["tritonserver"]
    # No --disable-auto-complete-config: the config has no tensors, Triton reads them from the model.
    assert container["args"] == ["--model-repository=/models", "--http-port=8000", "--grpc-port=8001",
                                 "--metrics-port=8002", "--strict-readiness=true", "--exit-on-error=true"]
    config = _config_of(deployment)
    assert 'name: "bert_large"' in config
    assert f'platform: "{platform}"' in config
    assert "max_batch_size: 64" in config
    assert "preferred_batch_size: [ 16, 32 ]" in config
    assert "max_queue_delay_microseconds: 500" in config
    assert "kind: KIND_GPU" in config
    args = fetch(deployment)["args"]
    assert args[args.index("--format") + 1] == model_format


def test_triton_cpu_without_batching(render_spec: SpecFactory, render_owner: Owner,
                                     render_images: RuntimeImages) -> None:
    config = _config_of(render(render_spec({"runtime": {"kind": "triton"}}), render_owner, render_images))
    assert "max_batch_size: 0" in config
    assert "dynamic_batching" not in config
    assert "kind: KIND_CPU" in config


def test_onnx_runtime_writes_no_config(render_spec: SpecFactory, render_owner: Owner,
                                       render_images: RuntimeImages) -> None:
    assert "--config-pbtxt" not in fetch(render(render_spec(), render_owner, render_images))["args"]


def test_gpu_placement(render_spec: SpecFactory, render_owner: Owner, render_images: RuntimeImages) -> None:
    spec = render_spec({"resources": {"gpu": {"product": "NVIDIA-A100-SXM4-80GB"},
                                      "nodeSelector": {"pool": "gpu"}, "runtimeClassName": "nvidia",
                                      "affinity": AFFINITY}})
    spec_out = pod(render(spec, render_owner, render_images))
    assert spec_out["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert spec_out["tolerations"] == [GPU_TOLERATION]
    assert spec_out["runtimeClassName"] == "nvidia"
    assert spec_out["affinity"] == AFFINITY


def test_cpu_pods_get_no_gpu_placement(render_spec: SpecFactory, render_owner: Owner,
                                       render_images: RuntimeImages) -> None:
    spec_out = pod(render(render_spec(), render_owner, render_images))
    for field in ("nodeSelector", "tolerations", "affinity", "runtimeClassName"):
        assert field not in spec_out


@pytest.mark.parametrize("existing", [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
    {"operator": "Exists"},
])
def test_gpu_toleration_added_once(existing: dict[str, Any], render_spec: SpecFactory, render_owner: Owner,
                                   render_images: RuntimeImages) -> None:
    other = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    spec = render_spec({"resources": {"gpu": {}, "tolerations": [other, existing]}})
    tolerations = pod(render(spec, render_owner, render_images))["tolerations"]
    assert tolerations == [other, existing]


def test_gpu_toleration_added_next_to_unrelated_ones(render_spec: SpecFactory, render_owner: Owner,
                                                     render_images: RuntimeImages) -> None:
    other = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}
    spec = render_spec({"resources": {"gpu": {}, "tolerations": [other]}})
    assert pod(render(spec, render_owner, render_images))["tolerations"] == [other, GPU_TOLERATION]


def test_rendering_is_deterministic_and_unshared(render_spec: SpecFactory, render_owner: Owner,
                                                 render_images: RuntimeImages) -> None:
    spec = render_spec(CASES["placement"])
    first = render(spec, render_owner, render_images)
    first["spec"]["template"]["spec"]["affinity"]["mutated"] = True
    first["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].append("X")
    second = render(spec, render_owner, render_images)
    assert second == render(spec, render_owner, render_images)
    assert "mutated" not in second["spec"]["template"]["spec"]["affinity"]
    assert server(second)["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert spec.resources.affinity == AFFINITY
