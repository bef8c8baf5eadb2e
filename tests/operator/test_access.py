"""Issue 10 item 4 on the real control plane: who may call a model.

- modelserver with --auth-token-review asks the real TokenReview API about each new bearer token:
  no token is 401, a token of an allowed ServiceAccount (TokenRequest, audience = the model) is served,
  a not-allowed ServiceAccount is 403 and a token for another audience 401, over REST and gRPC;
- spec.access makes the operator apply a NetworkPolicy the real API server accepts, and remove it with
  spec.access;
- with access.requireToken the sandbox kubelet's pod gets a bound token of its ServiceAccount, reviews
  callers with it, and the operator's gates present their own token to a canary.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from modeldeploy.kubeapi import Invalid, KubeClient
from modeldeploy.render.access import token_audience
from modeldeploy_sandbox.chart import RELEASE_NAMESPACE
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.controlplane import ISSUER, free_port
from modeldeploy_sandbox.onnx_models import linear_model
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

MODEL = "linear"
ANSWER_TIMEOUT = 10


def _account(admin: KubeClient, namespace: str, name: str) -> None:
    admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}})


def _token(admin: KubeClient, namespace: str, name: str, audience: str) -> str:
    answer = admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": 600}})
    return str(answer["status"]["token"])


@contextlib.contextmanager
def _token_reviewer(admin: KubeClient, namespace: str, name: str) -> Iterator[None]:
    """`namespace/name` may create TokenReviews (system:auth-delegator), as the chart's tokenReviewers do."""
    binding = f"access-test-{namespace}-{name}"
    admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                  "metadata": {"name": binding},
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "system:auth-delegator"},
                  "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    try:
        yield
    finally:
        admin.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None, binding)


def _rest(url: str, token: str | None, body: Any = None) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET, or of a POST when `body` is given."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else {}


INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def _grpc_code(port: int, token: str | None) -> str:
    """"OK" when metadata and an infer succeed over gRPC, else the status code's name."""
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    headers = {"authorization": f"Bearer {token}"} if token is not None else None
    try:
        client.get_model_metadata(MODEL, headers=headers)
        tensor = grpcclient.InferInput("input", [1, 4], "FP32")
        tensor.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(1, 4))
        client.infer(MODEL, [tensor], headers=headers)
    except InferenceServerException as error:
        return str(error.status()).removeprefix("StatusCode.")
    finally:
        client.close()
    return "OK"


@dataclass
class GuardedServer:
    http: str
    grpc_port: int
    audience: str


@pytest.fixture
def guarded_server(cluster: LocalCluster, admin: KubeClient, bare_sandbox: Sandbox,
                   tmp_path: Path) -> Iterator[GuardedServer]:
    """modelserver run as ServiceAccount `model-server` of the sandbox namespace, allowing the namespace
    `<ns>-callers` and the ServiceAccount `<ns>/caller`."""
    namespace = bare_sandbox.namespace
    callers = f"{namespace}-callers"
    cluster.create_namespace(callers)
    for ns, account in ((namespace, "model-server"), (namespace, "caller"), (namespace, "stranger"),
                        (callers, "anyone")):
        _account(admin, ns, account)
    audience = token_audience(namespace, MODEL)
    identity = tmp_path / "serviceaccount"
    identity.mkdir()
    # What the kubelet's projected volume holds: the server's own token (API server audience) and the CA.
    (identity / "token").write_text(_token(admin, namespace, "model-server", ISSUER))
    (identity / "ca.crt").write_bytes(cluster.control_plane.ca_pem)
    (tmp_path / "models" / MODEL / "1").mkdir(parents=True)
    (tmp_path / "models" / MODEL / "1" / "model.onnx").write_bytes(linear_model(seed=3))
    http_port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "modelserver", "serve", "--model-repository", str(tmp_path / "models"),
            "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
            "--metrics-port", str(free_port()), "--intra-op-threads", "1", "--drain-timeout", "2",
            "--auth-token-review", "--auth-audience", audience, "--auth-service-account-dir", str(identity),
            "--auth-api-server", admin.host, "--auth-allow-namespace", callers,
            "--auth-allow-service-account", f"{namespace}/caller"]
    with _token_reviewer(admin, namespace, "model-server"):
        log = (tmp_path / "server.log").open("w")
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{http_port}"
            wait_until(lambda: server.poll() is None and _probe(f"{url}/v2/health/ready"), 60,
                       message=f"modelserver ready ({tmp_path / 'server.log'})")
            yield GuardedServer(url, grpc_port, audience)
        finally:
            server.terminate()
            server.wait(10)
            log.close()
            cluster.delete_namespace(callers, until_gone=False)


def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_modelserver_checks_bearer_tokens_with_the_token_review_api(guarded_server: GuardedServer,
                                                                    admin: KubeClient,
                                                                    bare_sandbox: Sandbox) -> None:
    namespace, url, audience = bare_sandbox.namespace, guarded_server.http, guarded_server.audience
    model_url = f"{url}/v2/models/{MODEL}"
    caller = _token(admin, namespace, "caller", audience)
    # The first review waits for the binding to reach the API server's authorizer (503 until then).
    wait_until(lambda: _rest(model_url, caller)[0] == 200, 30, message="the allowed caller served")

    status, body = _rest(f"{model_url}/infer", caller, INFER)
    assert status == 200 and body["outputs"][0]["shape"] == [1, 3]
    anyone = _token(admin, f"{namespace}-callers", "anyone", audience)  # allowed by namespace
    assert _rest(f"{model_url}/infer", anyone, INFER)[0] == 200

    status, body = _rest(f"{model_url}/infer", None, INFER)
    assert status == 401 and "Authorization: Bearer" in body["error"] and audience in body["error"]
    status, body = _rest(f"{model_url}/infer", _token(admin, namespace, "stranger", audience), INFER)
    assert (status, body) == (403, {"error": f"ServiceAccount {namespace}/stranger is not allowed to call this "
                                             "model"})
    # The allowed caller's token for the API server (or another model) is not a token for this model.
    for other in (ISSUER, token_audience(namespace, "other-model")):
        status, body = _rest(model_url, _token(admin, namespace, "caller", other))
        assert status == 401 and body["error"].startswith("invalid bearer token"), body
    assert _rest(model_url, "not-a-token")[0] == 401
    # Probes carry no token: liveness and readiness stay open; everything else is closed.
    assert _probe(f"{url}/v2/health/live") and _probe(f"{url}/v2/health/ready")
    assert _rest(f"{url}/v2", None)[0] == 401 and _rest(f"{url}/v2/models/stats", None)[0] == 401

    grpc_port = guarded_server.grpc_port
    assert _grpc_code(grpc_port, caller) == "OK"
    assert _grpc_code(grpc_port, None) == "UNAUTHENTICATED"
    assert _grpc_code(grpc_port, _token(admin, namespace, "stranger", audience)) == "PERMISSION_DENIED"
    assert _grpc_code(grpc_port, _token(admin, namespace, "caller", ISSUER)) == "UNAUTHENTICATED"
    health = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        assert health.is_server_live() and health.is_server_ready()
    finally:
        health.close()


@pytest.mark.parametrize("spec,message", [
    ({"access": {"requireToken": True}}, "requireToken needs serviceAccountName"),
    ({"access": {"requireToken": True, "serviceAccountName": "s"}, "runtime": {"kind": "triton"}},
     "access.requireToken needs runtime.kind onnx"),
    ({"access": {"namespaces": ["Not_A_Namespace"]}}, "spec.access.namespaces[0]"),
    ({"access": {"serviceAccountName": "a", "requireToken": True},
      "model": {"credentials": {"serviceAccountName": "b"}}}, "must be equal"),
])
def test_the_api_server_refuses_bad_access(admin: KubeClient, bare_sandbox: Sandbox, spec: dict[str, Any],
                                           message: str) -> None:
    body = model_deployment("refused", bare_sandbox.artifacts.linear())
    body["metadata"]["namespace"] = bare_sandbox.namespace
    model = {**body["spec"]["model"], **spec.pop("model", {})}
    body["spec"] = {**body["spec"], **spec, "model": model}
    with pytest.raises(Invalid) as refused:
        admin.create(body)
    assert message in refused.value.message, refused.value.message


def test_access_renders_a_network_policy_the_api_server_accepts(sandbox: Sandbox) -> None:
    callers = {"namespaces": ["web"], "serviceAccounts": [{"namespace": "batch", "name": "scorer"}]}
    sandbox.apply(model_deployment("fenced", sandbox.artifacts.linear(), access=callers))
    policy = wait_until(lambda: sandbox.kube.get("networking.k8s.io/v1", "NetworkPolicy", sandbox.namespace,
                                                 "fenced"), 60, message="the NetworkPolicy of fenced")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"modeldeploy.dev/name": "fenced"}}
    (callers_rule, operator_rule, prometheus_rule) = policy["spec"]["ingress"]
    assert [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in callers_rule["from"]] == ["batch", "web"]
    assert operator_rule["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": RELEASE_NAMESPACE}}
    assert [p["port"] for p in prometheus_rule["ports"]] == [8002]
    assert policy["metadata"]["ownerReferences"][0]["name"] == "fenced"
    sandbox.wait_for_phase("fenced", "Healthy", 90)

    without = model_deployment("fenced", sandbox.artifacts.linear())
    sandbox.apply(without)  # spec.access removed: so is the policy
    wait_until(lambda: sandbox.kube.get("networking.k8s.io/v1", "NetworkPolicy", sandbox.namespace,
                                        "fenced") is None, 60, message="the NetworkPolicy of fenced removed")


def _pod_url(sandbox: Sandbox, revision: str) -> str:
    (pod,) = sandbox.kube.list("v1", "Pod", sandbox.namespace, {"modeldeploy.dev/revision": revision})
    process = sandbox.kubelet.pod(sandbox.namespace, pod["metadata"]["name"])
    assert process is not None
    return f"http://{process.address}:8000/v2/models"


def test_a_token_checked_model_pod_and_the_operators_gates(sandbox: Sandbox) -> None:
    namespace, admin = sandbox.namespace, sandbox.kube
    for account in ("model-server", "caller", "stranger"):
        _account(admin, namespace, account)
    access = {"serviceAccounts": [{"namespace": namespace, "name": "caller"}], "requireToken": True,
              "serviceAccountName": "model-server"}
    with _token_reviewer(admin, namespace, "model-server"):
        rollout = {"strategy": "canary", "steps": [{"weight": 50, "pause": "1s"}], "progressDeadlineSeconds": 120}
        first = sandbox.artifacts.linear("tokened/1/model.onnx", seed=1)
        sandbox.apply(model_deployment("tokened", first, access=access))
        status = sandbox.wait_for_phase("tokened", "Healthy", 90)
        (pod,) = sandbox.kube.list("v1", "Pod", namespace, {"modeldeploy.dev/revision": status["stableRevision"]})
        assert pod["spec"]["serviceAccountName"] == "model-server"

        url = f"{_pod_url(sandbox, status['stableRevision'])}/tokened"
        audience = token_audience(namespace, "tokened")
        caller = _token(admin, namespace, "caller", audience)
        wait_until(lambda: _rest(url, caller)[0] == 200, 30, message="the pod serves the allowed caller")
        assert _rest(url, None)[0] == 401
        assert _rest(url, _token(admin, namespace, "stranger", audience))[0] == 403

        # A canary: the operator's signature gate reads both revisions' metadata with its own token.
        second = sandbox.artifacts.linear("tokened/2/model.onnx", seed=2)
        sandbox.apply(model_deployment("tokened", second, strategy="canary", rollout=rollout, access=access))

        # Without a token the gate would read HTTP 401 and roll the canary back (GateFailed).
        def gates_passed() -> list[str]:
            return [e["message"] for e in sandbox.events("tokened") if e.get("reason") == "GatesPassed"]

        passed = wait_until(gates_passed, 90, message="the canary's gates passed")
        assert passed and "signature matches the stable" in passed[-1], passed
