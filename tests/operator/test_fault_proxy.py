"""The fault proxy itself, in front of the real apiserver: it relays, and each fault does what it says."""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.kubeapi import Conflict, KubeApiError, KubeClient
from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.faults import DropWatch, FaultProxy, Gone, Timeout, conflict, server_error, too_many_requests
from modeldeploy_sandbox.waiting import wait_until

from .users import namespace_user_token, token_client

NAMESPACE = f"fault-proxy-{os.getpid()}"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def token(cluster: LocalCluster) -> Iterator[str]:
    cluster.create_namespace(NAMESPACE)
    try:
        yield namespace_user_token(cluster.admin, NAMESPACE)
    finally:
        cluster.delete_namespace(NAMESPACE)


@pytest.fixture()
def proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.control_plane.server, cluster.control_plane.ca_path) as running:
        yield running


@pytest.fixture()
def kube(proxy: FaultProxy, token: str) -> Iterator[KubeClient]:
    client = token_client(proxy.url, token, timeout=5.0)
    yield client
    client.close()


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"k": "v"}}


def open_stream(proxy: FaultProxy, token: str, query: str, timeout: float = 10.0) -> http.client.HTTPResponse:
    request = urllib.request.Request(f"{proxy.url}{CONFIGMAPS}?{query}", headers={"Authorization": f"Bearer {token}"})
    response: http.client.HTTPResponse = _no_proxy.open(request, timeout=timeout)
    return response


def test_requests_pass_through_with_the_clients_own_credentials(
        proxy: FaultProxy, kube: KubeClient, admin: KubeClient) -> None:
    created = kube.create(configmap("through"))
    assert admin.get("v1", "ConfigMap", NAMESPACE, "through")["metadata"]["uid"] == created["metadata"]["uid"]  # type: ignore[index]
    assert [s.status for s in proxy.requests("POST", "/configmaps$")] == [201]
    anonymous = KubeClient(proxy.url)  # no Authorization header: the apiserver sees system:anonymous
    with pytest.raises(KubeApiError) as refused:
        anonymous.get("v1", "ConfigMap", NAMESPACE, "through")
    assert refused.value.status == 403 and "system:anonymous" in refused.value.message


def test_refusals_answer_n_matching_requests_and_forward_nothing(
        proxy: FaultProxy, kube: KubeClient, admin: KubeClient) -> None:
    failing = proxy.add(server_error(), method="POST", path=r"/configmaps$", times=2)
    for _ in range(2):
        with pytest.raises(KubeApiError) as error:
            kube.create(configmap("refused"))
        assert (error.value.status, error.value.reason) == (500, "InternalError")
        assert admin.get("v1", "ConfigMap", NAMESPACE, "refused") is None  # never reached the apiserver
    kube.create(configmap("refused"))  # the rule is spent
    assert failing.hits == 2

    proxy.add(conflict(), method="PATCH", path=r"/configmaps/refused$")
    with pytest.raises(Conflict) as stale:
        kube.merge_patch("v1", "ConfigMap", NAMESPACE, "refused", {"data": {"k": "w"}})
    assert stale.value.reason == "Conflict" and "the object has been modified" in stale.value.message
    assert admin.get("v1", "ConfigMap", NAMESPACE, "refused")["data"] == {"k": "v"}  # type: ignore[index]

    proxy.add(too_many_requests(retry_after=3), method="GET")
    request = urllib.request.Request(f"{proxy.url}{CONFIGMAPS}/refused")
    with pytest.raises(urllib.error.HTTPError) as throttled:
        _no_proxy.open(request, timeout=5)
    assert throttled.value.code == 429 and throttled.value.headers["Retry-After"] == "3"
    assert json.loads(throttled.value.read())["details"] == {"retryAfterSeconds": 3}


def test_rules_match_method_path_watch_and_user_agent(proxy: FaultProxy, kube: KubeClient, token: str) -> None:
    kube.create(configmap("matched"))
    watches = proxy.add(server_error(), method="GET", watch=True, times=None)
    others = proxy.add(server_error(), user_agent="^some-other-client$", times=None)
    elsewhere = proxy.add(server_error(), path=r"/secrets", times=None)
    assert kube.get("v1", "ConfigMap", NAMESPACE, "matched") is not None
    assert len(kube.list("v1", "ConfigMap", NAMESPACE)) >= 1
    assert (watches.hits, others.hits, elsewhere.hits) == (0, 0, 0)
    with pytest.raises(urllib.error.HTTPError) as error:
        open_stream(proxy, token, "watch=true")
    assert error.value.code == 500 and watches.hits == 1


def test_a_probability_fires_on_about_that_share_and_every_hit_is_counted(proxy: FaultProxy, kube: KubeClient) -> None:
    kube.create(configmap("flaky"))
    flaky = proxy.add(server_error(), method="GET", path=r"/configmaps/flaky$", times=None, probability=0.5)
    failed = 0
    for _ in range(40):
        try:
            kube.get("v1", "ConfigMap", NAMESPACE, "flaky")
        except KubeApiError:
            failed += 1
    assert flaky.hits == failed and 8 <= failed <= 32


def test_a_held_request_times_the_client_out_and_may_still_take_effect(
        proxy: FaultProxy, token: str, admin: KubeClient) -> None:
    impatient = token_client(proxy.url, token, timeout=1.0)
    lost = proxy.add(Timeout(hold=10, forward=True), method="POST", path=r"/configmaps$")
    started = time.monotonic()
    with pytest.raises(KubeApiError) as error:
        impatient.create(configmap("answer-lost"))
    assert error.value.status == 0 and time.monotonic() - started < 5  # the client's timeout, not the hold
    wait_until(lambda: lost.abandoned == 1, timeout=5, message="the proxy saw the client hang up")
    assert admin.get("v1", "ConfigMap", NAMESPACE, "answer-lost") is not None  # the write itself landed

    dropped = proxy.add(Timeout(hold=10), method="POST", path=r"/configmaps$")
    with pytest.raises(KubeApiError):
        impatient.create(configmap("never-sent"))
    wait_until(lambda: dropped.abandoned == 1, timeout=5, message="the proxy saw the client hang up")
    assert admin.get("v1", "ConfigMap", NAMESPACE, "never-sent") is None

    patient = proxy.add(Timeout(hold=0.3), method="GET")
    with pytest.raises(KubeApiError) as gateway:
        impatient.get("v1", "ConfigMap", NAMESPACE, "answer-lost")
    assert (gateway.value.status, gateway.value.reason, patient.abandoned) == (504, "Timeout", 0)


def test_a_watch_is_relayed_event_by_event_as_it_happens(proxy: FaultProxy, kube: KubeClient, token: str) -> None:
    since = kube.request("GET", CONFIGMAPS)["metadata"]["resourceVersion"]
    stream = open_stream(proxy, token, f"watch=true&resourceVersion={since}&timeoutSeconds=60", timeout=30)
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        for _ in range(2):
            lines.put(stream.readline())

    threading.Thread(target=read, daemon=True).start()
    for name in ("live-1", "live-2"):
        kube.create(configmap(name))
        event = json.loads(lines.get(timeout=5))  # long before the server ends the stream at 60 s
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", name)
    stream.close()


def test_a_dropped_watch_is_cut_mid_stream_after_its_events(proxy: FaultProxy, kube: KubeClient, token: str) -> None:
    for name in ("drop-1", "drop-2", "drop-3"):
        kube.create(configmap(name))
    drop = proxy.add(DropWatch(after_events=2), watch=True)
    stream = open_stream(proxy, token, "watch=true&timeoutSeconds=60")  # starts with an ADDED per object
    assert [json.loads(stream.readline())["type"] for _ in range(2)] == ["ADDED", "ADDED"]
    with pytest.raises(http.client.IncompleteRead):  # not a clean end of the chunked stream
        stream.read()
    assert drop.hits == 1


def test_gone_answers_a_watch_the_way_the_apiserver_does(proxy: FaultProxy, kube: KubeClient, token: str) -> None:
    gone = proxy.add(Gone(), watch=True)
    stream = open_stream(proxy, token, "watch=true&resourceVersion=5")
    assert stream.status == 200  # the apiserver reports an expired resourceVersion inside the stream
    assert json.loads(stream.readline()) == {"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version: 5", "reason": "Expired", "code": 410}}
    assert stream.read() == b"" and gone.hits == 1  # and ends it
    assert kube.list("v1", "ConfigMap", NAMESPACE) is not None and gone.hits == 1  # a list is not a watch
