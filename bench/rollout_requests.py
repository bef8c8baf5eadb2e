"""API requests per object for one ModelDeployment's life, on the real local control plane with real
modelserver pods (the sandbox kubelet): a first deploy, a no-op resync, and a canary rollout.

Counted in the apiserver's audit log (the operator's ServiceAccount), split by verb and resource:
- first sync: from the create until the first status (observedGeneration and conditions), and on
  until Healthy (pods ready, promoted);
- no-op resync: three resync periods with nothing changed (goal: 0 requests; the watches are the feed);
- canary: from the spec change until the promotion. Two canaries, one of 3 steps and one of 6 over
  the same weights' range (the same canary pod counts), so what a step costs is the difference over
  the 3 added steps (goal: <= 3 writes per step), and what a rollout costs whatever its steps (the
  canary's Deployment and Service, gates, promotion) is apart from it.

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
STEPS = [{"weight": weight, "pause": "2s"} for weight in (25, 50, 75)]
# 2 replicas: ceil(2 x weight %) canary pods is 1 up to 50 % and 2 above, in both step lists.
MORE_STEPS = [{"weight": weight, "pause": "2s"} for weight in (10, 25, 40, 50, 60, 75)]
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


def manifest(sb: Sandbox, version: int, steps: list[dict[str, Any]] = STEPS) -> dict[str, Any]:
    artifact = sb.artifacts.linear(f"resnet/{version}/model.onnx", seed=version)
    # No scale-down delay: the old revision is deleted within its rollout, not in the next one's count.
    rollout = {"strategy": "canary", "steps": steps, "progressDeadlineSeconds": 120, "scaleDownDelaySeconds": 0,
               "analysis": {"interval": "1s", "failureLimit": 2, "minSamples": 10, "checks": CHECKS}}
    return model_deployment(NAME, artifact, autoscaling={"minReplicas": 2, "maxReplicas": 2}, rollout=rollout)


def canary_requests(cluster: LocalCluster, sb: Sandbox, new: dict[str, Any]) -> Counter[str]:
    """The operator's requests from applying `new` until it is promoted (under load, for the analysis)."""
    stable = (sb.get(NAME) or {})["status"]["stableRevision"]
    start = len(cluster.control_plane.audit_events())
    with sb.loadgen(NAME, rate=60, duration=120) as load:
        sb.apply(new)
        promoted = sb.wait_for(NAME, lambda s: s.get("phase") == "Healthy" and s.get("stableRevision") != stable,
                               120, "the canary promoted")["stableRevision"]
        load.stop()
    wait_until(lambda: [d["metadata"]["name"] for d in sb.deployments(NAME)] == [promoted], timeout=30,
               message="the old revision deleted")
    time.sleep(1.0)  # the last writes land in the audit log
    return requests_since(cluster, sb.namespace, start)


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
            sb.wait_for_phase(NAME, "Healthy", timeout=90)
            wait_until(lambda: "Promoted" in [e["reason"] for e in sb.kube.list("v1", "Event", sb.namespace)],
                       timeout=30, message="the Promoted Event")
            time.sleep(1.0)
            to_healthy = requests_since(cluster, sb.namespace, start)
            quiet = len(audit())
            time.sleep(3 * RESYNC_SECONDS + 0.5)
            resync = requests_since(cluster, sb.namespace, quiet)
            canary = canary_requests(cluster, sb, manifest(sb, 2))
            longer = canary_requests(cluster, sb, manifest(sb, 3, MORE_STEPS))
        print(f"{'baseline: the children + a status':<34} {BASELINE_WRITES:>6.1f} writes")
        show("first sync (to the first status)", first_status)
        show("first deploy (to Healthy)", to_healthy)
        show("no-op resync", resync, 3, "/resync")
        show(f"canary ({len(STEPS)} steps, to promotion)", canary, len(STEPS), "/step")
        show(f"canary ({len(MORE_STEPS)} steps, to promotion)", longer, len(MORE_STEPS), "/step")
        added = len(MORE_STEPS) - len(STEPS)
        per_step = (writes(longer) - writes(canary)) / added
        print(f"{'canary, each step':<34} {per_step:>6.1f} writes/step  (the {added} added steps' writes / {added}; "
              f"goal <= 3)")
        print(f"{'canary, per rollout besides steps':<34} {writes(canary) - per_step * len(STEPS):>6.1f} writes")
        print(f"first sync / baseline: {writes(first_status) / BASELINE_WRITES:.2f}x; the Events (one per transition) "
              "are in the counts")


if __name__ == "__main__":
    main()
