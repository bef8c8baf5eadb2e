"""Issue 10 item 5 on the real control plane with the sandbox kubelet: a private source's credentials.

- s3:// keys from spec.model.credentials.secretRef: the S3 server (moto on loopback, with its IAM
  authentication turned on) checks the access key id and the request signature, so the keys are
  required, not merely read. With the right Secret the model is served; with a wrong key id it never is,
  and status names the fetch failure;
- credentials.serviceAccountName: the pods run as that ServiceAccount (workload identity keys on it),
  with its API token unmounted, and are served; a ServiceAccount that does not exist stops the pods at
  the API server, whose words reach status.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator

import numpy as np
import onnxruntime
import pytest

from modeldeploy_sandbox.onnx_models import linear_model, sha256_digest
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment

from ..s3_store import PrivateBucket, private_bucket
from .test_encryption import infer

MODEL = linear_model(seed=31)
MODEL_KEY = "linear/1/model.onnx"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBucket]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with private_bucket({MODEL_KEY: MODEL}) as store:
        yield store


def _aws_secret(sandbox: Sandbox, name: str, **keys: str) -> None:
    sandbox.kube.create({"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": name, "namespace": sandbox.namespace},
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}})


def _s3_spec(sandbox: Sandbox, name: str, bucket: PrivateBucket, secret: str) -> dict[str, object]:
    spec = model_deployment(name, sandbox.artifacts.linear(), strategy="immediate")
    spec["spec"]["model"] = {"uri": f"s3://{bucket.bucket}/{MODEL_KEY}", "digest": sha256_digest(MODEL),
                             "maxSize": "64Mi", "credentials": {"secretRef": {"name": secret}}}
    return spec


def _serves_the_model(sandbox: Sandbox, name: str, revision: str) -> None:
    (running,) = [p for p in sandbox.running_pods(ready=True) if p.revision == revision]
    rows = [[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]]
    expected = onnxruntime.InferenceSession(MODEL).run(None, {"input": np.array(rows, dtype=np.float32)})[0]
    np.testing.assert_allclose(infer(running.address, name, rows), expected, rtol=1e-5)


def test_s3_keys_from_the_secret_are_required_by_the_store(sandbox: Sandbox, bucket: PrivateBucket) -> None:
    store = {"AWS_ENDPOINT_URL": bucket.endpoint, "AWS_REGION": "us-east-1"}
    _aws_secret(sandbox, "s3-reader", AWS_ACCESS_KEY_ID=bucket.access_key_id,
                AWS_SECRET_ACCESS_KEY=bucket.secret_access_key, **store)
    # The right secret key under an access key id the store never issued.
    _aws_secret(sandbox, "s3-stranger", AWS_ACCESS_KEY_ID="AKIA" + secrets.token_hex(8).upper(),
                AWS_SECRET_ACCESS_KEY=bucket.secret_access_key, **store)
    sandbox.apply(_s3_spec(sandbox, "from-s3", bucket, "s3-reader"))
    sandbox.apply(_s3_spec(sandbox, "denied", bucket, "s3-stranger"))

    status = sandbox.wait_for_phase("from-s3", "Healthy", 120)
    _serves_the_model(sandbox, "from-s3", status["stableRevision"])
    (pod,) = sandbox.pods("from-s3", status["stableRevision"])
    (fetch,), (server,) = pod["spec"]["initContainers"], pod["spec"]["containers"]
    assert fetch["args"][fetch["args"].index("--credentials-dir") + 1] == "/var/run/modeldeploy/credentials"
    assert all(mount["name"] != "model-credentials" for mount in server["volumeMounts"])

    refused = sandbox.wait_for("denied", lambda s: s.get("rejectedRevisions"), 120, "denied's revision rejected")
    (rejected,) = refused["rejectedRevisions"]
    assert rejected["reason"] == "ArtifactAccessDenied" and "InvalidAccessKeyId" in rejected["message"], rejected
    assert f"s3://{bucket.bucket}/{MODEL_KEY}" in rejected["message"]
    assert bucket.secret_access_key not in json.dumps(refused)
    assert refused["phase"] == "Failed" and refused.get("stableRevision") is None
    assert {p.revision for p in sandbox.running_pods(ready=True)} == {status["stableRevision"]}


def test_credentials_service_account_runs_the_pods_with_its_token_unmounted(sandbox: Sandbox) -> None:
    # The account itself would have its token mounted (automountServiceAccountToken unset): the pod says no.
    sandbox.kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": {"name": "model-reader", "namespace": sandbox.namespace}})
    artifact = sandbox.artifacts.add("identity/1/model.onnx", MODEL)
    spec = model_deployment("identity", artifact, strategy="immediate")
    spec["spec"]["model"]["credentials"] = {"serviceAccountName": "model-reader"}
    missing = model_deployment("no-account", artifact, strategy="immediate")
    missing["spec"]["model"]["credentials"] = {"serviceAccountName": "nobody"}
    sandbox.apply(spec)
    sandbox.apply(missing)

    status = sandbox.wait_for_phase("identity", "Healthy", 90)
    _serves_the_model(sandbox, "identity", status["stableRevision"])
    (pod,) = sandbox.pods("identity", status["stableRevision"])
    assert pod["spec"]["serviceAccountName"] == "model-reader"
    assert pod["spec"]["automountServiceAccountToken"] is False
    # The API server's ServiceAccount admission added no API token volume to any container.
    assert all("projected" not in volume for volume in pod["spec"]["volumes"])
    for container in [*pod["spec"]["initContainers"], *pod["spec"]["containers"]]:
        assert all(m["mountPath"] != "/var/run/secrets/kubernetes.io/serviceaccount"
                   for m in container.get("volumeMounts", [])), container["name"]
    assert "--credentials-dir" not in pod["spec"]["initContainers"][0]["args"]

    # The pods really name the account: one that does not exist stops them at the API server.
    refused = sandbox.wait_for("no-account", lambda s: s.get("rejectedRevisions"), 90, "no-account rejected")
    (rejected,) = refused["rejectedRevisions"]
    assert rejected["reason"] == "FailedCreate" and 'serviceaccount "nobody" not found' in rejected["message"], \
        rejected
