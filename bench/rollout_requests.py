"""API requests per object for one ModelDeployment's life, on the real local control plane with real
modelserver pods (the sandbox kubelet): a first deploy, a no-op resync, and a canary rollout.

Counted in the apiserver's audit log (the operator's ServiceAccount), split by verb and resource:
- first sync: from the create until the first status (observedGeneration and conditions), and on
  until Healthy (pods ready, promoted);
- no-op resync: three resync periods with nothing changed (goal: 0 requests; the watches are the feed);
- canary: from the spec change until the promotion, writes per step (goal: <= 3 writes per step).

Beside them, the named baseline "children": the objects one revision needs (Deployment, two Services,
HPA, PDB) plus one status write, what any controller must write for a first deploy.

    python bench/rollout_requests.py
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from modeldeploy_sandbox.cluster import LocalCluster
from modeldeploy_sandbox.sandbox import Sandbox, model_deployment
from modeldeploy_sandbox.waiting import wait_until

NAME = "resnet"
RESYNC_SECONDS = 2.0
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
STEPS = [{"weight": 25, "pause": "2s"}, {"weight": 50, "pause": "2s"}, {"weight": 75, "pause": "2s"}]
CHECKS = [{"metric": "successRate", "min": 0.95, "maxDrop": 0.02}]
BASELINE_WRITES = 6


def requests_since(cluster: LocalCluster, namespace: str, since: int) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in cluster.control_plane.audit_events()[since:]:
        ref = event.get("objectRef") or {}
        if event.get("stage") != "ResponseComplete" or ref.get("namespace") not in (namespace, None):
            continue
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        code = (event.get("responseStatus") or {}).get("code", 200)
        refused = f" [{code}]" if code >= 300 else ""  # a refused write (409, 422 ...) is counted apart
        counts[f"{event.get('verb')} {ref.get('resource')}{sub}{refused}"] += 1
    return counts


def writes(counts: Counter[str]) -> int:
    return sum(count for key, count in counts.items() if key.split()[0] in WRITES)


def show(label: str, counts: Counter[str], per: float = 1.0, unit: str = "") -> None:
    detail = ", ".join(f"{key} {count / per:g}" for key, count in sorted(counts.items())
                       if not key.startswith("watch "))
    requests = sum(count for key, count in counts.items() if not key.startswith("watch "))
    print(f"{label:<34} {writes(counts) / per:>6.1f} writes{unit}  {requests / per:>6.1f} requests{unit}  ({detail})",
          flush=True)


def manifest(sb: Sandbox, version: int) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"resnet/{version}/model.onnx", seed=version)
    rollout = {"strategy": "canary", "steps": STEPS, "progressDeadlineSeconds": 120,
               "analysis": {"interval": "1s", "failureLimit": 2, "minSamples": 10, "checks": CHECKS}}
    return model_deployment(NAME, artifact, autoscaling={"minReplicas": 2, "maxReplicas": 2}, rollout=rollout)


def main() -> None:
    with LocalCluster() as cluster, Sandbox(cluster) as sb:
        print(f"Kubernetes {cluster.version} local control plane, real modelserver pods; "
              f"operator requests of one ModelDeployment (2 replicas), resync every {RESYNC_SECONDS:g}s", flush=True)
        audit = cluster.control_plane.audit_events
        with sb.run_operator(env={"MODELDEPLOY_RESYNC_SECONDS": str(RESYNC_SECONDS)}):
            start = len(audit())
            sb.apply(manifest(sb, 1))
            sb.wait_for(NAME, lambda s: bool(s.get("conditions")) and s.get("observedGeneration") == 1, 60,
                        "the first status")
            first_status = requests_since(cluster, sb.namespace, start)
            stable = sb.wait_for_phase(NAME, "Healthy", timeout=90)["stableRevision"]
            wait_until(lambda: "Promoted" in [e["reason"] for e in sb.kube.list("v1", "Event", sb.namespace)],
                       timeout=30, message="the Promoted Event")
            time.sleep(1.0)
            to_healthy = requests_since(cluster, sb.namespace, start)
            quiet = len(audit())
            time.sleep(3 * RESYNC_SECONDS + 0.5)
            resync = requests_since(cluster, sb.namespace, quiet)
            canary_start = len(audit())
            with sb.loadgen(NAME, rate=60, duration=120) as load:
                sb.apply(manifest(sb, 2))
                sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                            120, "the canary promoted")
                load.stop()
            time.sleep(1.0)
            canary = requests_since(cluster, sb.namespace, canary_start)
        print(f"{'baseline: the children + a status':<34} {BASELINE_WRITES:>6.1f} writes")
        show("first sync (to the first status)", first_status)
        show("first deploy (to Healthy)", to_healthy)
        show("no-op resync", resync, 3, "/resync")
        show(f"canary ({len(STEPS)} steps, to promotion)", canary, len(STEPS), "/step")
        print(f"first sync / baseline: {writes(first_status) / BASELINE_WRITES:.2f}x; the Events (one per transition) "
              "are in the counts")


if __name__ == "__main__":
    main()
