"""Issue 10 items 5-7 on the real control plane with the sandbox kubelet.

- the apiserver refuses oci://, a pvc:// claim that climbs out of the PVC root, and a missing digest;
- a private source's Secret reaches the init container only, and the model is fetched with it;
- an artifact bigger than spec.model.maxSize is never served; the pods' emptyDirs and ephemeral
  storage are sized from the model;
- the operator never contacts a Prometheus outside its allow-list, and refuses an allowed one's
  redirect and oversize answers (the analysis holds, the redirect target is never reached).
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from modeldeploy.api import API_VERSION, KIND
from modeldeploy.kubeapi import Invalid, KubeClient
from modeldeploy_sandbox.onnx_models import linear_model, sha256_digest
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

TOKEN = "hunter2-model-token"
FLOOD_BYTES = 8 * 2**20  # twice the operator's metrics cap


@dataclass
class Recorder:
    """An HTTP server on loopback that records every request: (path, Authorization header)."""

    host: str = "127.0.0.1"
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append((handler.path, handler.headers.get("Authorization")))

    def seen(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(recorder, answer) -> base URL; `answer(handler)` writes the response."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(recorder: Recorder, answer: Any) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.record(self)
                answer(self)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer((recorder.host, 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://{recorder.host}:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"",
           headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


# --------------------------------------------------------------------------- admission


def _md(namespace: str, model: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "unsafe", "namespace": namespace},
            "spec": {"model": model}}


@pytest.mark.parametrize("model,message", [
    ({"uri": "oci://registry.example/models/resnet@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64},
     "spec.model.uri"),
    ({"uri": "pvc://../etc/model.onnx", "digest": "sha256:" + "a" * 64},
     "CLAIM a PersistentVolumeClaim name"),
    ({"uri": "pvc://models/a/../../x.onnx", "digest": "sha256:" + "a" * 64},
     "'..' path segments are not allowed"),
    ({"uri": "https://models.example/m.onnx"}, "digest is required unless allowUnverified is true"),
    ({"uri": "https://models.example/m.onnx", "digest": "sha256:" + "a" * 64, "credentials": {}},
     "credentials need secretRef or serviceAccountName"),
])
def test_the_apiserver_refuses_unsafe_model_sources(admin: KubeClient, bare_sandbox: Sandbox,
                                                    model: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid) as refused:
        admin.create(_md(bare_sandbox.namespace, model))
    assert message in refused.value.message, refused.value.message


def test_unverified_is_accepted_only_when_asked_for(admin: KubeClient, bare_sandbox: Sandbox) -> None:
    created = admin.create(_md(bare_sandbox.namespace, {"uri": "https://models.example/m.onnx",
                                                        "allowUnverified": True}))
    assert created["spec"]["model"]["allowUnverified"] is True


# --------------------------------------------------------------------------- credentials and size


def _pod_spec(sb: Sandbox, revision: str) -> dict[str, Any]:
    (pod,) = [p for p in sb.kube.list("v1", "Pod", sb.namespace, {"modeldeploy.dev/revision": revision})]
    return dict(pod["spec"])


def test_a_private_source_is_fetched_with_a_secret_only_the_init_container_sees(sandbox: Sandbox,
                                                                                serve: Any) -> None:
    model = linear_model(seed=5)
    origin = Recorder()

    def private(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            _reply(handler, 401)
        else:
            _reply(handler, 200, model)

    url = serve(origin, private)
    sandbox.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "model-source",
                                                                           "namespace": sandbox.namespace},
                         "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    spec = model_deployment("private", sandbox.artifacts.linear(), strategy="immediate")
    spec["spec"]["model"] = {"uri": f"{url}/private/model.onnx", "digest": sha256_digest(model),
                             "maxSize": "64Mi", "credentials": {"secretRef": {"name": "model-source"}}}
    sandbox.apply(spec)
    status = sandbox.wait_for("private", lambda s: s.get("phase") == "Healthy", 90, "private Healthy")
    assert origin.seen() == [("/private/model.onnx", f"Bearer {TOKEN}")]

    pod = _pod_spec(sandbox, status["stableRevision"])
    (fetch,), (server,) = pod["initContainers"], pod["containers"]
    assert {"name": "model-credentials", "mountPath": "/var/run/modeldeploy/credentials", "readOnly": True} \
        in fetch["volumeMounts"]
    assert all(mount["name"] != "model-credentials" for mount in server["volumeMounts"])
    assert "env" not in fetch and all("TOKEN" not in str(env) for env in server.get("env", []))
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["model-credentials"]["secret"]["secretName"] == "model-source"
    # Sized from maxSize 64Mi: the real scheduler placed the pod with this request.
    assert volumes["model-repository"]["emptyDir"] == {"sizeLimit": "128Mi"}
    assert server["resources"]["requests"]["ephemeral-storage"] == "1152Mi"
    assert pod["automountServiceAccountToken"] is False


def test_a_model_over_max_size_is_never_served(sandbox: Sandbox) -> None:
    artifact = sandbox.artifacts.linear("big/1/model.onnx", seed=6)
    spec = model_deployment("big", artifact, strategy="immediate")
    spec["spec"]["model"]["maxSize"] = str(artifact.size - 1)
    sandbox.apply(spec)
    status = sandbox.wait_for("big", lambda s: s.get("rejectedRevisions"), 90, "big's revision rejected")
    (rejected,) = status["rejectedRevisions"]
    assert "ArtifactTooLarge" in rejected["message"] and "maxSize" in rejected["message"], rejected
    assert status.get("stableRevision") is None
    assert sandbox.running_pods(ready=True) == []


# --------------------------------------------------------------------------- the operator's own requests


def _canary_with(sandbox: Sandbox, name: str, address: str) -> None:
    """`name` healthy on model 1, then model 2 as a canary analysed by the Prometheus at `address`."""
    rollout = {"strategy": "canary", "steps": [{"weight": 50, "pause": "2s"}], "progressDeadlineSeconds": 120,
               "analysis": {"provider": {"type": "prometheus", "address": address}, "interval": "2s"}}
    for seed in (1, 2):
        artifact = sandbox.artifacts.linear(f"{name}/{seed}/model.onnx", seed=seed)
        spec = model_deployment(name, artifact, strategy="canary", rollout=rollout)
        sandbox.apply(spec)
        if seed == 1:
            sandbox.wait_for_phase(name, "Healthy", 90)


def _held_because(sandbox: Sandbox, name: str, text: str) -> str:
    """The MetricsUnavailable Event of `name` that contains `text` (waited for)."""
    def found() -> str | None:
        return next((e["message"] for e in sandbox.events(name)
                     if e.get("reason") == "MetricsUnavailable" and text in e.get("message", "")), None)
    return str(wait_until(found, 90, message=f"a MetricsUnavailable event of {name} saying {text!r}"))


def test_a_prometheus_outside_the_allow_list_is_never_contacted(sandbox: Sandbox, serve: Any) -> None:
    outside = Recorder(host="127.0.0.2")  # loopback, but not in the sandbox's allow-list (http://127.0.0.1)
    address = serve(outside, lambda handler: _reply(handler, 200, b'{"status":"success"}'))
    _canary_with(sandbox, "ssrf", address)
    message = _held_because(sandbox, "ssrf", "allow-list")
    assert address in message and "prometheus.allowedAddresses" in message
    assert sandbox.status("ssrf")["phase"] == "Progressing"  # held, neither promoted nor rolled back
    assert outside.seen() == []


def test_an_allowed_prometheus_that_redirects_or_floods_is_refused(sandbox: Sandbox, serve: Any) -> None:
    target = Recorder()
    target_url = serve(target, lambda handler: _reply(handler, 200, b"{}"))

    def redirecting(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path == "/-/ready":
            _reply(handler, 200, b"ready")
        else:
            _reply(handler, 302, headers={"Location": f"{target_url}/stolen"})

    def flooding(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path == "/-/ready":
            _reply(handler, 200, b"ready")
            return
        # No Content-Length: the operator must stop reading by itself.
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        try:
            for _ in range(FLOOD_BYTES // 65536):
                handler.wfile.write(b" " * 65536)
        except OSError:
            pass  # the operator hung up after its cap

    _canary_with(sandbox, "redirects", serve(Recorder(), redirecting))
    _canary_with(sandbox, "floods", serve(Recorder(), flooding))
    assert "answered a redirect (HTTP 302), which is not followed" in _held_because(sandbox, "redirects", "redirect")
    assert f"more than the limit of {4 * 2**20} bytes" in _held_because(sandbox, "floods", "limit")
    assert target.seen() == []
