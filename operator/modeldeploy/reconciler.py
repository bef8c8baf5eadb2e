"""One reconcile of one ModelDeployment: observe, plan (pure), execute. The I/O half of the operator."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from .access_policy import reconcile_network_policy
from .api import API_VERSION, KIND
from .api.spec import ModelDeploymentSpec
from .api.types import parse_duration
from .gates import run_gates
from .kubeapi import Conflict, Fenced, KubeClient
from .metrics import MetricsUnavailable, RevisionTarget, forget_baselines, provider_for
from .observe import observe, parse_status
from .render import (
    REVISION_LABEL,
    ROLE_LABEL,
    Owner,
    RuntimeImages,
    model_name,
    render_deployment,
    render_hpa,
    render_pdb,
    render_revision_service,
)
from .render.containers import template_identity
from .render.ports import METRICS_PORT
from .reporting import reconcile_error, status_patch, write_status, writing
from .rollout import AnalysisSamples, Observed, Plan, RevisionPlan, needs, plan
from .rollout.analysis import custom_queries
from .rollout.builder import parse_time
from .rollout.canary import analysis_run
from .rollout.errors import ReconcileError, failed_status
from .rollout.held import HeldAnalysis, hold, overlay
from .rollout.model import EventRecord
from .settings import access_peers
from .telemetry import OperatorMetrics
from .traffic import RouterTarget, router_for

logger = logging.getLogger("modeldeploy")
CONFLICT_REQUEUE_SECONDS = 0.2  # someone wrote status first: re-read and re-plan soon
UNSENT_EVENTS_REQUEUE_SECONDS = 2.0  # an Event the API refused is sent again this soon
REPLAY_EVENTS_SECONDS = 600.0  # a restarted operator re-sends status' recent Events this young


@dataclass
class Context:
    kube: KubeClient
    images: RuntimeImages = field(default_factory=RuntimeImages)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Whether this replica's shard owns an object with these labels (relabelled away: not ours to write).
    owns: Callable[[Mapping[str, str] | None], bool] = lambda labels: True


@dataclass(frozen=True)
class Outcome:
    """How one reconcile ended: its result (for metrics), when to run again, and the error if any."""

    result: Literal["ok", "conflict", "error"]
    requeue_after: float | None
    error: ReconcileError | None = None


class Reconciler:
    def __init__(self, context: Context, stopped: Callable[[], bool] | None = None) -> None:
        self.context = context
        # Fenced: once the daemon is told to stop (exit, or a peer took over), nothing more is written.
        self.kube = context.kube.fenced(stopped) if stopped is not None else context.kube
        self._unsent: list[EventRecord] = []  # written to status, not yet accepted as Events
        self._replay: list[EventRecord] | None = None  # status' recent Events, checked once per process
        self._held: HeldAnalysis | None = None  # passing intervals not written yet (rollout.held)

    def run_once(self, namespace: str, name: str) -> Outcome:
        """One reconcile that never raises: an error it cannot get past goes into status and an Event."""
        started = time.perf_counter()
        outcome = self._run(namespace, name)
        metrics = self.context.metrics
        metrics.reconcile_seconds.observe(time.perf_counter() - started)
        metrics.reconciles.labels(outcome.result).inc()
        return outcome

    def _run(self, namespace: str, name: str) -> Outcome:
        obj: dict[str, Any] | None = None
        try:
            obj = self.kube.get(API_VERSION, KIND, namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp") \
                    or not self.context.owns(obj["metadata"].get("labels")):
                return Outcome("ok", None)
            return Outcome("ok", self._reconcile(obj))
        except Conflict:  # only our guarded status write raises it bare (children's come wrapped)
            return Outcome("conflict", CONFLICT_REQUEUE_SECONDS)
        except Fenced as fenced:  # stopping: whoever serves the object next plans again from the API
            logger.info("reconcile %s/%s stopped before writing: %s", namespace, name, fenced)
            return Outcome("ok", None)
        except Exception as exc:  # every error must reach status, a bug included
            error = reconcile_error(exc)
            if error.reason == "OperatorError":
                logger.exception("reconcile %s/%s failed: %s", namespace, name, error.message)
            else:
                logger.warning("reconcile %s/%s failed: %s: %s", namespace, name, error.reason, error.message)
            if obj is not None:
                self._report(obj, error)
            return Outcome("error", None, error)

    def _reconcile(self, obj: dict[str, Any]) -> float | None:
        """Observe, plan, execute; seconds until the next reconcile is due (None: wait for a change)."""
        observed = observe(self.kube, obj, self.context.clock())
        with_held = overlay(observed.status, self._held)
        if with_held is not None:
            observed = replace(observed, status=with_held)
        if observed.spec is not None:  # the images a new revision would get: part of its identity
            observed = replace(observed, template=template_identity(observed.spec, self.context.images,
                                                                       access_peers()))
        observed = self._with_inputs(self._with_routes(obj, observed))
        if self._replay is None:
            # A crash between a status write and its Events lost them: status still has them.
            self._replay = [EventRecord(e.type, e.reason, e.message, e.at)  # type: ignore[arg-type]
                            for e in observed.status.recent_events
                            if (observed.now - parse_time(e.at)).total_seconds() < REPLAY_EVENTS_SECONDS]
        result = plan(observed)
        if result.touch_children and observed.spec is not None:
            self._execute(obj, observed, observed.spec, result)
            if result.prime_metrics:
                self._prime(observed, observed.spec, result)  # a new step: its first interval starts now
        self._held = hold(obj.get("status"), result.status, result.verdicts,
                          sends_events=bool(result.events or self._unsent or self._replay))
        if self._held is None:
            self._write_status(obj, result)
        self._record(observed, result)
        if self._unsent:
            return min(result.requeue_after or UNSENT_EVENTS_REQUEUE_SECONDS, UNSENT_EVENTS_REQUEUE_SECONDS)
        return result.requeue_after

    # ----- slow inputs the planner asked for -----

    def _with_routes(self, obj: dict[str, Any], observed: Observed) -> Observed:
        """The router's truth about weights (Flagger's GetRoutes), for the planner to report and act on."""
        if observed.spec is None or not observed.deployments:
            return observed
        router = router_for(RouterTarget(self.kube, self._owner(obj), observed.spec))
        return replace(observed, routes=router.get_weights())

    def _with_inputs(self, observed: Observed) -> Observed:
        wanted = needs(observed)
        spec, status = observed.spec, observed.status
        if spec is None or status.stable_revision is None or status.rollout is None:
            return observed
        if wanted.gates:
            gates = run_gates(self.kube, observed, spec, status.stable_revision, status.rollout.revision)
            observed = replace(observed, gates=gates)
        if wanted.analysis:
            observed = replace(observed, samples=self._samples(observed, spec))
        return observed

    def _targets(self, observed: Observed, spec: ModelDeploymentSpec) -> tuple[RevisionTarget, RevisionTarget] | None:
        """(canary, stable) as the metric providers address them: revision labels and ready pods' ports."""
        status = observed.status
        canary = status.rollout.revision if status.rollout else status.canary_revision
        if canary is None or status.stable_revision is None:
            return None
        model = model_name(spec, observed.name)

        def target(revision: str) -> RevisionTarget:
            endpoints = tuple(f"{pod.address}:{METRICS_PORT}" for pod in observed.pods_of(revision)
                              if pod.ready and pod.address)
            return RevisionTarget(observed.namespace, observed.name, revision, model, endpoints)

        return target(canary), target(status.stable_revision)

    def _samples(self, observed: Observed, spec: ModelDeploymentSpec) -> AnalysisSamples | None:
        targets = self._targets(observed, spec)
        if targets is None:
            return None
        provider = provider_for(spec.rollout.analysis.provider)
        interval = parse_duration(spec.rollout.analysis.interval)
        queries = custom_queries(spec.rollout.analysis)
        run = analysis_run(observed)
        saved = observed.status.analysis.baselines if observed.status.analysis else {}
        try:
            if not provider.is_online():
                raise MetricsUnavailable(f"{spec.rollout.analysis.provider.type} metrics provider is not ready")
            for target in targets:  # a restarted operator: measure from the baselines status kept
                provider.restore(target, saved.get(target.revision, {}))
            canary, stable = (provider.sample(target, interval, queries, run) for target in targets)
        except MetricsUnavailable as error:
            return AnalysisSamples(canary=None, stable=None, unavailable=str(error))
        baselines = {target.revision: provider.baseline(target) for target in targets}
        return AnalysisSamples(canary=canary, stable=stable, baselines={k: v for k, v in baselines.items() if v},
                               canary_missing=provider.missing(targets[0]) if canary is None else None)

    def _prime(self, observed: Observed, spec: ModelDeploymentSpec, result: Plan) -> None:
        provider = provider_for(spec.rollout.analysis.provider)
        targets = self._targets(observed, spec) or ()
        for target in targets:
            provider.prime(target)
        if result.status.analysis is not None:  # kept with the status this round writes (restarts)
            baselines = {target.revision: provider.baseline(target) for target in targets}
            result.status.analysis.baselines = {revision: kept for revision, kept in baselines.items() if kept}

    # ----- children -----

    def _owner(self, obj: dict[str, Any]) -> Owner:
        meta = obj["metadata"]
        return Owner(api_version=API_VERSION, kind=KIND, name=meta["name"], namespace=meta["namespace"],
                     uid=meta.get("uid", ""))

    def _apply(self, desired: dict[str, Any]) -> None:
        with writing(desired["apiVersion"], desired["kind"], desired["metadata"]["name"]):
            _, changed = self.kube.apply(desired)
        if changed:
            self.context.metrics.api_writes.labels(desired["kind"]).inc()

    def _revision(self, owner: Owner, observed: Observed, spec: ModelDeploymentSpec, rev: RevisionPlan) -> None:
        live = observed.deployments.get(rev.revision)
        if rev.render:
            desired = render_deployment(spec, name=owner.name, namespace=owner.namespace, revision=rev.revision,
                                        spec_hash=rev.spec_hash, role=rev.role, replicas=rev.replicas,
                                        owner=owner, images=self.context.images, peers=access_peers(),
                                        # Decided once, at creation: a template change re-creates pods.
                                        born_serving=live.born_serving if live is not None else rev.born_serving)
            if rev.replicas is None and live is None:
                # The HPA owns the count from now on; it starts where autoscaling says.
                desired["spec"]["replicas"] = spec.autoscaling.min_replicas
            self._apply(desired)
        elif live is not None and (live.role != rev.role or rev.replicas not in (None, live.replicas)):
            patch: dict[str, Any] = {"metadata": {"labels": {ROLE_LABEL: rev.role}}}
            if rev.replicas is not None:
                patch["spec"] = {"replicas": rev.replicas}
            with writing("apps/v1", "Deployment", rev.revision):
                self.kube.merge_patch("apps/v1", "Deployment", owner.namespace, rev.revision, patch)
            self.context.metrics.api_writes.labels("Deployment").inc()
        self._apply(render_revision_service(name=owner.name, namespace=owner.namespace, revision=rev.revision,
                                            role=rev.role, owner=owner))

    def _execute(self, obj: dict[str, Any], observed: Observed, spec: ModelDeploymentSpec, result: Plan) -> None:
        owner = self._owner(obj)
        for rev in result.revisions:
            self._revision(owner, observed, spec, rev)
        reconcile_network_policy(self.kube, self._apply, self._delete, owner, spec)  # spec.access
        if not result.weights and result.hpa_target is None:
            # Nothing serves (the first revision was rejected): no endpoint, HPA or PDB of nothing.
            router = router_for(RouterTarget(self.kube, owner, spec))
            for api_version, kind in ((*router.child,), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                                      ("policy/v1", "PodDisruptionBudget")):
                self._delete(api_version, kind, owner.namespace, owner.name)
        if result.hpa_target:
            self._apply(render_hpa(spec, name=owner.name, namespace=owner.namespace,
                                   target_deployment=result.hpa_target, owner=owner))
        if result.weights:
            self._apply(render_pdb(name=owner.name, namespace=owner.namespace, owner=owner))
            router = router_for(RouterTarget(self.kube, owner, spec))
            with writing(*router.child, owner.name):
                changed = router.set_weights(result.weights)
            if changed:
                self.context.metrics.api_writes.labels("Router").inc()
                canary = result.status.canary_revision
                if canary is not None:
                    # What the router routes now (its writes are in the cache), in this round's status
                    # write: not a second write when the next round observes it.
                    result.status.canary_weight = router.get_weights().get(canary, 0)
        for revision in result.delete_revisions:
            self._delete_revision(owner.namespace, revision)

    def _delete_revision(self, namespace: str, revision: str) -> None:
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
            self._delete(api_version, kind, namespace, revision)
        forget_baselines(namespace, revision.rpartition("-")[0], revision)

    def _delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        with writing(api_version, kind, name):
            deleted = self.kube.delete(api_version, kind, namespace, name)
        if deleted:
            self.context.metrics.api_writes.labels(kind).inc()

    # ----- status, events, metrics -----

    def _write_status(self, obj: dict[str, Any], result: Plan) -> None:
        # A stale resourceVersion means someone (a user's intent) wrote first: Conflict, re-plan.
        unsent, self._unsent = self._unsent, []
        replay, self._replay = self._replay or [], []
        self._unsent = write_status(self.kube, self.context.metrics, obj, result.status.to_dict(),
                                    [*unsent, *result.events], replayed=replay)

    def _report(self, obj: dict[str, Any], error: ReconcileError) -> None:
        """The error into status and an Event (once per distinct error); best effort, the daemon retries."""
        meta = obj["metadata"]
        status, events = failed_status(parse_status(obj.get("status")), error,
                                       generation=int(meta.get("generation") or 1), now=self.context.clock())
        try:
            # Unguarded: only phase, message and conditions change, and they must land even in a race.
            self._unsent += write_status(self.kube, self.context.metrics, obj, status.to_dict(), events,
                                         guarded=False)
            self.context.metrics.set_phase(meta["namespace"], meta["name"], status.phase)
        except Exception as exc:  # e.g. the API server is down: the log has it
            logger.warning("could not report the error of %s/%s in status: %s", meta["namespace"], meta["name"], exc)

    def _record(self, observed: Observed, result: Plan) -> None:
        metrics = self.context.metrics
        status = result.status
        metrics.canary_weight.labels(observed.namespace, observed.name).set(status.canary_weight)
        metrics.set_phase(observed.namespace, observed.name, status.phase)
        for verdict in result.verdicts:
            metrics.analysis_verdicts.labels(verdict).inc()
        if any(event.reason == "Promoted" for event in result.events):
            metrics.rollouts.labels("promoted", "").inc()
        # A rollback is a revision rejected in this round (whatever its reason, InvalidSpec included).
        for rejected in status.rejected_revisions:
            if rejected not in observed.status.rejected_revisions:
                metrics.rollouts.labels("rolled_back", rejected.reason).inc()


__all__ = ["REVISION_LABEL", "Conflict", "Context", "Outcome", "Reconciler", "status_patch"]
