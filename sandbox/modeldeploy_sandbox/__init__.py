"""The local cluster for tests and ``make demo``: a real Kubernetes control plane on loopback, with a
sandbox kubelet that runs pods as real processes. Test and demo infrastructure, not in the operator image.

- :mod:`.binaries` — the control-plane binaries, built from their Go modules by ``hack/kube/build.sh``.
- :mod:`.controlplane` — etcd, kube-apiserver, kube-controller-manager, kube-scheduler (:mod:`.pki`
  makes their certificates).
- :mod:`.manifests` — server-side apply; our CRD, the Gateway API CRDs, RuntimeClass ``nvidia``.
- :mod:`.kubelet` — the kubelet of the fake :mod:`.nodes`: pods bound to them run as real
  ``modelserver`` processes (helpers: :mod:`.pod_runner`, :mod:`.container_runner`, :mod:`.process`,
  :mod:`.probes`, :mod:`.addresses`, :mod:`.quantities`).
- :mod:`.network` — pod IPs and their loopback twins; an HTTP proxy into the pod network.
- :mod:`.chart` + :mod:`.operator_process` — the operator as its own process, with the chart's
  arguments, environment and RBAC (a ServiceAccount token).
- :mod:`.cluster` — all of the above as one ``LocalCluster``; :mod:`.sandbox` — one namespace of it
  with model files (:mod:`.artifacts`, :mod:`.onnx_models`) and the operator.
- :mod:`.loadgen` + :mod:`.routing` — inference traffic split as the EndpointSlices / HTTPRoute say.
- :mod:`.faults` — API faults injected by a proxy in front of the real apiserver.
- :mod:`.prometheus` — a real Prometheus scraping the pods; :mod:`.demo` — ``make demo``.
- :mod:`.cli` — ``modeldeploy sandbox up``; :mod:`.describe` — what a running cluster is made of, for people.
- :mod:`.waiting` — waiting for a condition (``wait_until``) or checking that one holds (``holds``).
"""
