"""PodDisruptionBudget over all pods of a ModelDeployment (every revision)."""

from __future__ import annotations

from typing import Any

from .labels import Owner, child_labels, object_meta, selector


def render_pdb(*, name: str, namespace: str, owner: Owner) -> dict[str, Any]:
    """policy/v1 PDB `name`: maxUnavailable 1 (unlike minAvailable 1, never blocks a drain at 1 replica)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(name, namespace, owner, child_labels(name, None, None)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}},
    }
