"""A fetch that never got the artifact is named by what went wrong (the fetch's exit code), not as a
digest mismatch: a 403 calls for credentials, a 404 for the URI, a size refusal for maxSize."""

from __future__ import annotations

import pytest

from modeldeploy.rollout import ContainerState, PodState
from modeldeploy.rollout.failures import classify


def fetch_failed(code: int, message: str, restarts: int = 1) -> list[PodState]:
    """A revision's one pod whose `fetch` init container exited with `code` and this termination line."""
    container = ContainerState(name="fetch", init=True, terminated_reason="Error", terminated_exit_code=code,
                               terminated_message=message, restart_count=restarts)
    return [PodState(name="p", revision="r", containers=(container,))]


@pytest.mark.parametrize(("code", "line", "reason"), [
    (4, "ArtifactNotFound: https://m/x/model.onnx answered HTTP 404", "ArtifactNotFound"),
    (5, "ArtifactAccessDenied: s3://b/k: InvalidAccessKeyId", "ArtifactAccessDenied"),
    # A URI that names a digest is still a refusal, not a mismatch: the exit code decides.
    (5, "ArtifactAccessDenied: https://m/by-digest/sha256/ab/model.onnx answered HTTP 403", "ArtifactAccessDenied"),
    (7, "ArtifactTooLarge: more than 1048576 bytes (spec.model.maxSize)", "ArtifactTooLarge"),
    (6, "DownloadFailed: connection refused after 5 attempts", "ArtifactFetchFailed"),
    (3, "ArtifactIntegrity: digest mismatch for https://m/x", "ArtifactIntegrity"),
])
def test_a_failed_fetch_is_named_by_its_exit_code(code: int, line: str, reason: str) -> None:
    failure = classify(fetch_failed(code, line))
    assert failure is not None and failure.reason == reason and failure.fatal, failure
    assert line in failure.message and "pod p container fetch" in failure.message


def test_a_first_fetch_failure_waits_for_the_restart_and_a_mismatch_does_not() -> None:
    # A 404 or a refused connection may be a publish still in progress: one restart before rejecting.
    first = classify(fetch_failed(4, "ArtifactNotFound: HTTP 404", restarts=0))
    assert first is not None and first.reason == "ArtifactNotFound" and not first.fatal
    mismatch = classify(fetch_failed(3, "ArtifactIntegrity: digest mismatch", restarts=0))
    assert mismatch is not None and mismatch.fatal
