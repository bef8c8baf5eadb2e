"""Local stand-ins for a Kubernetes cluster: test infrastructure that `make demo` reuses.

- :mod:`.emulator` — an in-memory Kubernetes API server (kmock-based) with the semantics an
  operator relies on: resourceVersions, conflicts, patch types, status subresource, selectors,
  finalizers, ownerReference garbage collection, fault injection and request accounting
  (helpers: :mod:`.resources` — the served resources, :mod:`.selectors`, :mod:`.mutations`).
- :mod:`.emulator_server` — runs the emulator on 127.0.0.1 in a background thread, with sync
  accessors acting as a user would (``running_emulator() -> EmulatorHandle``).
- :mod:`.operator_runner` — runs kopf against such a server in a background thread
  (``running_operator(url, module=... | registry=... | handlers=...)``, ``wait_until``).
- :mod:`.kubelet` — the pod simulator: Deployments -> pods (on the emulator) -> real ``modelserver``
  processes on 127.0.0.N, with kubelet-style pod status (helpers: :mod:`.deployments`,
  :mod:`.scheduling`, :mod:`.quantities`, :mod:`.addresses`, :mod:`.pod_runner`,
  :mod:`.container_runner`, :mod:`.process`, :mod:`.probes`).
- :mod:`.artifacts` + :mod:`.onnx_models` — model files over HTTP on 127.0.0.1, with digests.
- :mod:`.loadgen` + :mod:`.routing` — inference traffic split as the Service / HTTPRoute says.
- :mod:`.cluster` — ``with Sandbox() as sb, sb.run_operator(): ...``: all of the above together.
"""
