"""A step's status write carries the weight the router realises in that same round, so traffic shifts
cost no second status write (seen on every status version the watch delivers)."""

from __future__ import annotations

import threading
from typing import Any

from modeldeploy.cache import Informer, Store
from modeldeploy_sandbox.sandbox import API_VERSION, KIND, Sandbox

from .audit import settled
from .test_restart import NAME, canary


def test_the_status_that_enters_a_step_already_has_its_realised_weight(bare_sandbox: Sandbox) -> None:
    sb = bare_sandbox
    versions: list[dict[str, Any]] = []

    def seen(kind: str, event_type: str, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == NAME:
            versions.append(obj.get("status") or {})

    stop = threading.Event()
    informer = Informer(sb.kube, API_VERSION, KIND, Store(), namespace=sb.namespace, on_event=seen)
    with sb.run_operator():
        generation = sb.apply(canary(sb, 1))["metadata"]["generation"]
        sb.wait_for(NAME, lambda s: settled(s, generation), 90, "v1 Healthy")
        informer.start(stop)
        try:
            assert informer.synced.wait(30)
            sb.apply(canary(sb, 2))
            sb.wait_for(NAME, lambda s: (s.get("rollout") or {}).get("stage") == "Steps"
                        and s.get("canaryWeight") == 50, 90, "the canary at 50%")
        finally:
            stop.set()
    in_steps = [v for v in versions if (v.get("rollout") or {}).get("stage") == "Steps"]
    # The gates passed with the canary's pod ready, so the router realises 50 % in the round that
    # enters the step: the write that says "step 1" says 50 too (before: 0, then a write of its own).
    assert in_steps and in_steps[0].get("canaryWeight") == 50, [
        ((v.get("rollout") or {}).get("stage"), v.get("canaryWeight")) for v in versions]
