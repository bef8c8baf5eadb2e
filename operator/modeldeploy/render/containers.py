"""The two containers of an inference pod: `fetch` (init) stages the model, `server` serves it."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import ModelDeploymentSpec

from .access import AccessPeers, access_identity
from .images import RuntimeImages
from .ports import GRPC_PORT, HTTP_PORT, METRICS_PORT, PORTS
from .signature import signature_args, signature_env, signature_mounts
from .storage import (
    CIPHERTEXT_PATH,
    CIPHERTEXT_VOLUME,
    CREDENTIALS_PATH,
    CREDENTIALS_VOLUME,
    DECRYPTION_KEY_FILE,
    DECRYPTION_KEY_PATH,
    DECRYPTION_KEY_VOLUME,
    ephemeral_storage_request,
    max_model_bytes,
)
from .triton_config import Platform, render_config_pbtxt

MODEL_REPOSITORY = "/models"
PVC_ROOT = "/mnt/pvc"  # modelserver fetch's default --pvc-root
REPOSITORY_VOLUME = "model-repository"
TMP_VOLUME = "tmp"
SOURCE_VOLUME = "model-source"
TRITON_PLATFORMS: dict[str, Platform] = {
    "onnx": "onnxruntime_onnx",
    "tensorrt_plan": "tensorrt_plan",
    "torchscript": "pytorch_libtorch",
}
# Model loading (TensorRT engines, warm-up) can take minutes: 5s x 180 = 15 minutes.
STARTUP_PERIOD_SECONDS = 5
STARTUP_FAILURE_THRESHOLD = 180


def container_security_context() -> dict[str, Any]:
    """Restricted Pod Security Standard, fresh each call (callers may mutate manifests)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def model_name(spec: ModelDeploymentSpec, name: str) -> str:
    """Name on the inference protocol and directory in the model repository."""
    return spec.model.name or name


def pvc_claim(uri: str) -> str | None:
    """`pvc://claim/path` -> `claim`; None for other schemes."""
    if not uri.startswith("pvc://"):
        return None
    return uri.removeprefix("pvc://").split("/", 1)[0]


def triton_config(spec: ModelDeploymentSpec, name: str) -> str:
    """config.pbtxt of the model for runtime.kind triton."""
    batching = spec.runtime.batching
    return render_config_pbtxt(
        model_name(spec, name),
        TRITON_PLATFORMS[spec.model.format],
        batching.max_batch_size if batching else 0,
        preferred_batch_sizes=tuple(batching.preferred_batch_sizes or ()) if batching else (),
        max_queue_delay_us=batching.max_queue_delay_microseconds if batching else None,
        instance_kind="KIND_GPU" if spec.resources.gpu else "KIND_CPU",
    )


def _resources(spec: ModelDeploymentSpec, *, with_gpu: bool) -> dict[str, Any]:
    # The emptyDirs count against ephemeral storage: schedule the pod where the model fits.
    requests: dict[str, Any] = {"ephemeral-storage": ephemeral_storage_request(spec), **spec.resources.requests}
    limits: dict[str, Any] = dict(spec.resources.limits)
    gpu = spec.resources.gpu
    if with_gpu and gpu is not None:
        # Extended resources can't be overcommitted: requests must equal limits.
        requests[gpu.resource_name] = str(gpu.count)
        limits[gpu.resource_name] = str(gpu.count)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def fetch_container(spec: ModelDeploymentSpec, name: str, images: RuntimeImages) -> dict[str, Any]:
    """Init container: download, verify the digest, write the Triton-layout repository."""
    model = spec.model
    args = ["fetch", model.uri, "--into", MODEL_REPOSITORY, "--model", model_name(spec, name),
            "--version", str(model.version), "--format", model.format]
    # allowUnverified is the only way to skip the digest; with neither, fetch itself refuses.
    if model.digest:
        args += ["--digest", model.digest]
    elif model.allow_unverified:
        args += ["--allow-unverified"]
    args += ["--max-bytes", str(max_model_bytes(spec))]
    if spec.runtime.kind == "triton":
        args += ["--config-pbtxt", triton_config(spec, name)]
    mounts: list[dict[str, Any]] = [{"name": REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY},
              {"name": TMP_VOLUME, "mountPath": "/tmp"}]
    claim = pvc_claim(model.uri)
    if claim is not None:
        mounts.append({"name": SOURCE_VOLUME, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True})
    if model.credentials is not None and model.credentials.secret_ref is not None:
        # Only this container mounts the Secret: the server never sees the source's credentials.
        mounts.append({"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_PATH, "readOnly": True})
        args += ["--credentials-dir", CREDENTIALS_PATH]
    if model.encryption is not None:
        # Only this container mounts the key; the ciphertext is verified on disk, decrypted into memory.
        mounts += [{"name": DECRYPTION_KEY_VOLUME, "mountPath": DECRYPTION_KEY_PATH, "readOnly": True},
                   {"name": CIPHERTEXT_VOLUME, "mountPath": CIPHERTEXT_PATH}]
        args += ["--decryption-key", f"{DECRYPTION_KEY_PATH}/{DECRYPTION_KEY_FILE}",
                 "--ciphertext-dir", CIPHERTEXT_PATH]
    # The trusted signer's key reaches this container only; fetch verifies before anything is installed.
    args += signature_args(spec)
    mounts += signature_mounts(spec)
    container: dict[str, Any] = {
        "name": "fetch",
        # Always the operator's CPU modelserver image: runtime.image only replaces the server.
        "image": images.modelserver,
        "args": args,
        "volumeMounts": mounts,
        # The failure line (ArtifactIntegrity, ...) lands in the pod status for classification.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    if signature_env(spec):
        container["env"] = signature_env(spec)
    # Same cpu/memory as the server: a pod's request is max(init, sum(containers)), so this costs
    # no extra capacity, satisfies quotas that demand limits, and large downloads get the memory.
    resources = _resources(spec, with_gpu=False)
    if resources:
        container["resources"] = resources
    return container


def _server_image_and_args(spec: ModelDeploymentSpec, images: RuntimeImages) -> tuple[str, dict[str, Any]]:
    runtime = spec.runtime
    if runtime.kind == "triton":
        # Auto-complete stays on: the rendered config.pbtxt has no input/output tensors (the API
        # carries no signature), and Triton fills them in from the ONNX/TensorRT model.
        return runtime.image or images.triton, {
            "command": ["tritonserver"],
            "args": [f"--model-repository={MODEL_REPOSITORY}", f"--http-port={HTTP_PORT}",
                     f"--grpc-port={GRPC_PORT}", f"--metrics-port={METRICS_PORT}",
                     "--strict-readiness=true", "--exit-on-error=true"],
        }
    gpu = spec.resources.gpu is not None
    args = ["serve", "--model-repository", MODEL_REPOSITORY, "--http-port", str(HTTP_PORT),
            "--grpc-port", str(GRPC_PORT), "--metrics-port", str(METRICS_PORT)]
    if gpu:
        args += ["--device", "cuda"]
    if runtime.batching is not None:
        args += ["--max-batch-size", str(runtime.batching.max_batch_size),
                 "--max-queue-delay-us", str(runtime.batching.max_queue_delay_microseconds)]
    default = images.modelserver_gpu if gpu else images.modelserver
    return runtime.image or default, {"args": args}


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def server_container(spec: ModelDeploymentSpec, images: RuntimeImages) -> dict[str, Any]:
    """The inference server; Triton and modelserver look the same from outside."""
    image, entry = _server_image_and_args(spec, images)
    container: dict[str, Any] = {
        "name": "server",
        "image": image,
        **entry,
        "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}
                  for port_name, (port, _) in PORTS.items()],
    }
    if spec.runtime.env:
        container["env"] = [{"name": env.name, "value": env.value} for env in spec.runtime.env]
    resources = _resources(spec, with_gpu=True)
    if resources:
        container["resources"] = resources
    container |= {
        "volumeMounts": [{"name": REPOSITORY_VOLUME, "mountPath": MODEL_REPOSITORY, "readOnly": True},
                         {"name": TMP_VOLUME, "mountPath": "/tmp"}],
        # Liveness only starts once the startup probe passed, so slow loads are never killed.
        "startupProbe": _probe("/v2/health/ready", period=STARTUP_PERIOD_SECONDS,
                               failures=STARTUP_FAILURE_THRESHOLD),
        "readinessProbe": _probe("/v2/health/ready", period=5, failures=3),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
    }
    return container


# Bump when a change of this package changes the pods of an unchanged spec: every revision is then
# rolled out again, as a canary (spec_hash covers it), never updated in place.
TEMPLATE_VERSION = 2  # 2: emptyDir sizeLimits, ephemeral-storage, fetch --max-bytes


def template_identity(spec: ModelDeploymentSpec, images: RuntimeImages, peers: AccessPeers | None = None) -> str:
    """What the operator (not the spec) puts in a revision's pods: the template version and the images,
    and the token check of spec.access (not in spec_hash's parts; empty when off)."""
    server, _ = _server_image_and_args(spec, images)
    return f"v{TEMPLATE_VERSION}|fetch={images.modelserver}|server={server}" + access_identity(
        spec, peers or AccessPeers())
