"""The pure rollout core: observed state in, the next status and actions out."""

from .model import (
           ContainerState,
           DeploymentState,
           EventRecord,
           Failure,
           Observed,
           Plan,
           PodState,
           RevisionPlan,
)
from .planner import plan

__all__ = ["ContainerState", "DeploymentState", "EventRecord", "Failure", "Observed", "Plan", "PodState",
           "RevisionPlan", "plan"]
