"""The pure rollout core: observed state in, the next status and actions out."""

from .model import (
    AnalysisSamples,
    ContainerState,
    DeploymentState,
    EventRecord,
    Failure,
    GateResult,
    Needs,
    Observed,
    Plan,
    PodState,
    RevisionPlan,
)
from .planner import needs, plan

__all__ = ["AnalysisSamples", "ContainerState", "DeploymentState", "EventRecord", "Failure", "GateResult", "Needs",
           "Observed", "Plan", "PodState", "RevisionPlan", "needs", "plan"]
