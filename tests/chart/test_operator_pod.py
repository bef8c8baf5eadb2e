"""The operator Deployment: HA via kopf peering, PodSecurity restricted, probes, images as env."""

from __future__ import annotations

from typing import Any

import pytest

from .rendering import FULL_VALUES, by_kind, one, operator_container, render

VALUE_SETS = {"default": None, "full": FULL_VALUES}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_pod_meets_pod_security_restricted(values: dict[str, Any] | None) -> None:
    pod = one(render(values), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's numeric user
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert not context.get("privileged")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert all(set(volume) <= {"name", "emptyDir", "configMap", "projected"} for volume in pod["volumes"])


def test_replicas_peering_and_liveness() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = operator_container(objects)
    env = _env(container)
    assert env["KOPF_PEERING"] == "modeldeploy"
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "modeldeploy"
    # Distinct kopf priorities per replica come from the pod IP (see operator/Dockerfile).
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"]


def test_runtime_images_and_settings_are_passed_as_env() -> None:
    env = _env(operator_container(render(FULL_VALUES)))
    assert env["MODELDEPLOY_MODELSERVER_IMAGE"] == "registry.example/modelserver:dev"
    assert env["MODELDEPLOY_MODELSERVER_GPU_IMAGE"] == "registry.example/modelserver:dev-gpu"
    assert env["MODELDEPLOY_TRITON_IMAGE"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert env["MODELDEPLOY_METRICS_PORT"] == "8080"
    assert env["MODELDEPLOY_RESYNC_SECONDS"] == "120"
    assert env["TZ"] == "UTC"


def test_env_round_trips_through_operator_settings() -> None:
    from modeldeploy.settings import OperatorSettings

    env = _env(operator_container(render(FULL_VALUES)))
    settings = OperatorSettings.from_env({key: value for key, value in env.items() if isinstance(value, str)})
    assert settings.images.modelserver == "registry.example/modelserver:dev"
    assert settings.images.modelserver_gpu == "registry.example/modelserver:dev-gpu"
    assert settings.metrics_port == 8080 and settings.resync_seconds == 120.0
    defaults = _env(operator_container(render()))
    default_settings = OperatorSettings.from_env({k: v for k, v in defaults.items() if isinstance(v, str)})
    assert default_settings == OperatorSettings(), "chart defaults drifted from the operator's defaults"


def test_image_defaults_to_app_version() -> None:
    assert operator_container(render())["image"] == "ghcr.io/modeldeploy/operator:0.1.0"
    container = operator_container(render(FULL_VALUES))
    assert container["image"] == "registry.example/modeldeploy-operator:dev"
    assert container["imagePullPolicy"] == "Never"


def test_metrics_service_selects_the_operator_pods() -> None:
    objects = render()
    service = one(objects, "Service")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert set(service["spec"]["selector"].items()) <= set(labels.items())
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics",
                                         "protocol": "TCP"}]


def test_service_account_is_bound() -> None:
    objects = render()
    account = one(objects, "ServiceAccount")["metadata"]["name"]
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account
    for binding in by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                        "namespace": "modeldeploy-system"}]
