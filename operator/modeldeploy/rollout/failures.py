"""Name why a revision's pods are not becoming ready, from their statuses and their Deployment's.

Fatal failures reject the revision at once (they never heal by waiting); the others are
reported while the progress deadline runs, and name the ProgressDeadline failure when it expires.
"""

from __future__ import annotations

from ..api.status import FailureReason
from .model import ContainerState, DeploymentState, Failure, Observed, PodState

FETCH_CONTAINER = "fetch"
# `modelserver fetch` exit code for a digest mismatch (see modelserver/fetch.py).
DIGEST_MISMATCH_EXIT_CODE = 3
# `modelserver fetch` exit code and reason when the model's signature does not verify (modelserver/signature.py).
SIGNATURE_INVALID_EXIT_CODE = 10
SIGNATURE_INVALID = "SignatureInvalid"
# `modelserver fetch` exit code and reason when an encrypted model does not decrypt (modelserver/decrypt.py).
DECRYPTION_FAILED_EXIT_CODE = 11
DECRYPTION_FAILED = "DecryptionFailed"
# `modelserver fetch` exit codes of a fetch that never got the artifact, and the reason each is reported as
# (a 403 and a 404 call for different fixes than a digest mismatch); any other code is ArtifactFetchFailed.
FETCH_FAILURE_REASONS: dict[int, FailureReason] = {
    4: "ArtifactNotFound", 5: "ArtifactAccessDenied", 7: "ArtifactTooLarge"}
# `modelserver serve` exit code when a model does not load.
MODEL_LOAD_EXIT_CODE = 4
CRASH_LOOP_RESTARTS = 3
IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
# A pull that may work on a retry (a registry's rate limit, a slow mirror): fatal only after a grace.
RETRIED_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff"}
# modelserver: "load failed", ONNX Runtime: "Load model from X failed"; Triton: "failed to load", "poll failed".
MODEL_LOAD_MARKERS = ("failed to load", "load failed", "model load", "load model from", "modelloadfailed",
                      "poll failed for model")


# A full ResourceQuota frees up when other pods go; every other refusal of the pods themselves
# (admission: a RuntimeClass that does not exist, Pod Security, a LimitRange; validation: an image
# name with surrounding spaces) stays until the spec or the cluster changes.
QUOTA_MARKER = "exceeded quota"


def _text(*parts: str | None) -> str:
    return " ".join(part for part in parts if part)


def _container_failure(pod: PodState, container: ContainerState) -> Failure | None:
    where = f"pod {pod.name} container {container.name}"
    if container.waiting_reason in IMAGE_PULL_REASONS:
        fatal = container.waiting_reason not in RETRIED_PULL_REASONS  # see with_pull_grace
        return Failure("ImagePull", f"{where}: {container.waiting_reason}: {container.waiting_message or ''}".strip(),
                       fatal)
    code = container.terminated_exit_code
    reason = container.terminated_reason
    message = container.terminated_message
    if code is None or code == 0:
        code, reason, message = (container.last_terminated_exit_code, container.last_terminated_reason,
                                 container.last_terminated_message)
    if reason == "OOMKilled":
        return Failure("OOMKilled", f"{where} was OOMKilled: raise resources.limits.memory", True)
    if code is not None and code != 0:
        detail = _text(message)[-300:]
        if container.init and container.name == FETCH_CONTAINER and (
                code == DECRYPTION_FAILED_EXIT_CODE or DECRYPTION_FAILED in detail):
            # A wrong key or a damaged ciphertext never heals by retrying.
            return Failure("DecryptionFailed", f"{where}: the model artifact could not be decrypted: {detail}", True)
        if container.init and container.name == FETCH_CONTAINER and (
                code == SIGNATURE_INVALID_EXIT_CODE or SIGNATURE_INVALID in detail):
            # Missing, untrusted or mismatching: the same bytes and signature never verify on a retry.
            return Failure("SignatureInvalid", f"{where}: the model's signature does not verify: {detail}", True)
        if container.init and container.name == FETCH_CONTAINER:
            if code == DIGEST_MISMATCH_EXIT_CODE or (code not in FETCH_FAILURE_REASONS and "digest" in detail.lower()):
                return Failure("ArtifactIntegrity", f"{where}: model artifact digest mismatch: {detail}", True)
            return Failure(FETCH_FAILURE_REASONS.get(code, "ArtifactFetchFailed"),
                           f"{where}: model artifact could not be fetched (exit {code}): {detail}",
                           container.restart_count >= 1)
        if code == MODEL_LOAD_EXIT_CODE or any(marker in detail.lower() for marker in MODEL_LOAD_MARKERS):
            return Failure("ModelLoadFailed", f"{where}: model failed to load (exit {code}): {detail}", True)
    if container.waiting_reason == "CrashLoopBackOff" or container.restart_count >= CRASH_LOOP_RESTARTS:
        detail = _text(message)[-300:]
        return Failure("CrashLoop", f"{where} restarted {container.restart_count} times: {detail}".strip(),
                       container.restart_count >= CRASH_LOOP_RESTARTS)
    return None


def replica_failure(deployment: DeploymentState | None) -> Failure | None:
    """The pods of `deployment` cannot even be created (FailedCreate): the API server's refusal."""
    if deployment is None or not deployment.replica_failure:
        return None
    message = f"Deployment {deployment.revision} cannot create pods (FailedCreate): {deployment.replica_failure}"
    if QUOTA_MARKER in deployment.replica_failure:
        return Failure("Unschedulable", message, False)
    return Failure("FailedCreate", message, True)


def revision_failure(observed: Observed, revision: str, waited_seconds: float = 0.0,
                     image_pull_grace_seconds: float = 0.0) -> Failure | None:
    """The most telling failure of `revision`: its Deployment's, then its pods'. A pull that may
    still work (ErrImagePull, ImagePullBackOff) turns fatal once the rollout has waited the grace."""
    failure = classify(observed.pods_of(revision), observed.deployments.get(revision))
    if failure is not None and failure.reason == "ImagePull" and not failure.fatal \
            and waited_seconds >= image_pull_grace_seconds:
        detail = f" (still failing after imagePullGraceSeconds, {image_pull_grace_seconds:g}s)"
        return Failure("ImagePull", failure.message + detail, True)
    return failure


def classify(pods: list[PodState], deployment: DeploymentState | None = None) -> Failure | None:
    """The most telling failure among a revision's pods (and its Deployment): fatal ones first."""
    created = replica_failure(deployment)
    found: list[Failure] = [created] if created else []
    for pod in pods:
        if pod.unschedulable_message:
            # With a GPU product selector the scheduler names the selector, not the GPU resource.
            gpu = "nvidia.com/" in pod.unschedulable_message or (
                pod.requests_gpu and "affinity/selector" in pod.unschedulable_message)
            found.append(Failure("InsufficientGPU" if gpu else "Unschedulable",
                                 f"pod {pod.name} unschedulable: {pod.unschedulable_message}", False))
        for container in pod.containers:
            failure = _container_failure(pod, container)
            if failure:
                found.append(failure)
    fatal = [failure for failure in found if failure.fatal]
    ranked = fatal or found
    return ranked[0] if ranked else None
