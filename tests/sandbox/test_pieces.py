"""Unit tests of the simulator's pure pieces: command lines, scheduling, controllers, back-off."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

from modeldeploy.sandbox.addresses import AddressPool, is_loopback
from modeldeploy.sandbox.container_runner import Backoff
from modeldeploy.sandbox.deployments import TEMPLATE_HASH_LABEL, deployment_status, new_pod, plan_scale, template_hash
from modeldeploy.sandbox.onnx_models import corrupt_model, linear_model, other_signature_model, sha256_digest
from modeldeploy.sandbox.process import UnsupportedContainer, plan_launch
from modeldeploy.sandbox.quantities import parse_quantity
from modeldeploy.sandbox.scheduling import SandboxNode, pod_requests, unschedulable_message


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [Backoff().delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert Backoff(base=0.5, cap=1).delay(3) == 1


def test_fetch_and_serve_become_modelserver_processes_with_mapped_paths(tmp_path: Path) -> None:
    volumes = {"model-repository": tmp_path / "volumes/model-repository", "tmp": tmp_path / "volumes/tmp"}
    mounts = [{"name": "model-repository", "mountPath": "/models"}, {"name": "tmp", "mountPath": "/tmp"}]
    fetch = {
        "name": "fetch",
        "args": ["fetch", "http://127.0.0.1:1/m.onnx", "--into", "/models", "--model", "m"],
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    launch = plan_launch(fetch, volumes=volumes, address="127.0.0.7", pod_dir=tmp_path, attempt=1)
    assert launch.argv[:4] == (sys.executable, "-m", "modelserver", "fetch")
    assert launch.argv[6] == str(tmp_path / "volumes/model-repository")
    assert launch.argv[-2:] == ("--termination-log", str(tmp_path / "termination-log/fetch-1"))
    assert launch.env["TMPDIR"] == str(tmp_path / "volumes/tmp")
    assert launch.message_policy == "FallbackToLogsOnError"

    serve = {
        "name": "server",
        "args": ["serve", "--model-repository=/models/x"],
        "volumeMounts": mounts,
        "env": [{"name": "MODELSERVER_FAULT_LATENCY_MS", "value": "5"}, {"name": "S", "valueFrom": {}}],
    }
    launch = plan_launch(serve, volumes=volumes, address="127.0.0.7", pod_dir=tmp_path, attempt=2)
    assert launch.argv[4:] == (f"--model-repository={tmp_path}/volumes/model-repository/x", "--host", "127.0.0.7")
    assert launch.env["MODELSERVER_FAULT_LATENCY_MS"] == "5" and "S" not in launch.env
    assert not any(key.startswith("PYTEST") for key in launch.env)  # nothing of this process leaks in

    # An interpreter under /tmp (a CI checkout there) is the host's, not a path in the pod.
    launch = plan_launch(serve, volumes=volumes, address="a", pod_dir=tmp_path, attempt=3, python="/tmp/ci/bin/python")
    assert launch.argv[0] == "/tmp/ci/bin/python"

    with pytest.raises(UnsupportedContainer, match="tritonserver"):
        plan_launch(
            {"name": "server", "command": ["tritonserver"]}, volumes={}, address="a", pod_dir=tmp_path, attempt=1
        )


def test_the_scheduler_names_what_does_not_fit() -> None:
    node = SandboxNode(allocatable={"cpu": "2", "memory": "4Gi", "pods": "10"})
    gpu = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    assert unschedulable_message(gpu, node) == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    big = {"containers": [{"resources": {"requests": {"cpu": "1500m", "nvidia.com/gpu": "1"}}}]}
    assert unschedulable_message(big, node, [big]) == (
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient nvidia.com/gpu."
    )
    small = {
        "initContainers": [{"resources": {"requests": {"memory": "1Gi"}}}],
        "containers": [{"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}],
    }
    assert unschedulable_message(small, node, [small, small]) is None
    assert pod_requests(small) == {"cpu": 0.5, "memory": 2.0**30}
    product = {"nodeSelector": {"nvidia.com/gpu.product": "A100"}, **gpu}
    assert unschedulable_message(product, node) == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
    )
    affinity = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
                    ]
                }
            }
        },
        "containers": [{}],
    }
    assert unschedulable_message(affinity, node) is None


def test_quantities() -> None:
    assert [parse_quantity(q) for q in ("500m", "2Gi", "1", "1e3", "1k", 3)] == [0.5, 2.0**31, 1, 1000, 1000, 3]
    with pytest.raises(ValueError):
        parse_quantity("2 apples")


def _deployment(replicas: int | None, image: str = "a") -> dict:  # type: ignore[type-arg]
    spec: dict = {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"image": image}]}}}  # type: ignore[type-arg]
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": "web", "namespace": "ml", "uid": "u1", "generation": 3}, "spec": spec}


def _pod(name: str, deployment: dict, ready: bool = True, created: str = "2026-01-01T00:00:00Z") -> dict:  # type: ignore[type-arg]
    pod = new_pod(deployment)
    pod["metadata"].update(name=name, creationTimestamp=created, ready=ready)
    pod["spec"]["nodeName"] = "n"
    return pod


def _ready(pod: dict) -> bool:  # type: ignore[type-arg]
    return bool(pod["metadata"]["ready"])


def test_the_deployment_controller_scales_surges_and_reports() -> None:
    deployment = _deployment(2)
    pod = new_pod(deployment)
    assert pod["metadata"]["generateName"] == "web-" and pod["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert pod["metadata"]["labels"] == {"app": "x", TEMPLATE_HASH_LABEL: template_hash(deployment)}
    assert pod["spec"]["restartPolicy"] == "Always"
    assert plan_scale(_deployment(None), [], _ready).create == 1  # the API's default: 1 replica

    a, b = _pod("a", deployment, created="2026-01-01T00:00:01Z"), _pod("b", deployment, created="2026-01-01T00:00:02Z")
    assert plan_scale(_deployment(1), [a, b], _ready).delete == ["b"]  # the newest goes first
    b["metadata"]["ready"] = False
    assert plan_scale(_deployment(1), [b, a], _ready).delete == ["b"]  # ... but an unready one before it
    assert deployment_status(deployment, [a, b], _ready) == {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "unavailableReplicas": 1,
    }

    changed = _deployment(2, image="b")  # a template change: new pods first, old ones once they are ready
    plan = plan_scale(changed, [a, b], _ready)
    assert (plan.create, plan.delete) == (2, [])
    c, d = _pod("c", changed), _pod("d", changed)
    assert sorted(plan_scale(changed, [a, b, c, d], _ready).delete) == ["a", "b"]
    assert deployment_status(changed, [a, b, c, d], _ready)["updatedReplicas"] == 2


def test_addresses_are_loopback_reused_and_skip_busy_ones() -> None:
    import socket

    pool = AddressPool(first=50, last=52, ports=(18999,))
    with socket.socket() as busy:
        busy.bind(("127.0.0.50", 18999))
        busy.listen()
        first = pool.allocate()
        assert first == "127.0.0.51"  # .50 has its port taken by someone else
    second = pool.allocate()
    assert second == "127.0.0.50"
    pool.release("127.0.0.51")
    assert pool.allocate() == "127.0.0.51"
    assert pool.allocate() == "127.0.0.52" and pool.allocate() is None
    assert is_loopback("127.0.0.9") and not is_loopback("10.0.0.1") and not is_loopback("nonsense")


def test_generated_models_have_the_expected_signatures() -> None:
    linear = onnx.load_from_string(linear_model(seed=1))
    assert [i.name for i in linear.graph.input] == ["input"] and [o.name for o in linear.graph.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in linear.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3]  # a symbolic batch dim: [-1, 3] on the inference protocol
    assert linear_model(seed=1) == linear_model(seed=1) != linear_model(seed=2)
    other = onnx.load_from_string(other_signature_model())
    assert [i.name for i in other.graph.input] == ["features"]
    with pytest.raises(Exception):  # noqa: B017 - onnx raises protobuf's DecodeError
        onnx.load_from_string(corrupt_model())
    assert sha256_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_crash_fault_is_parsed_but_armed_only_from_the_process_environment() -> None:
    import threading

    from modelserver.faults import Faults

    before = threading.active_count()
    faults = Faults.from_env({"MODELSERVER_FAULT_CRASH_AFTER_S": "0.5"})
    assert faults.crash_after_s == 0.5 and not faults.active
    assert threading.active_count() == before  # no timer: this test process must live on
