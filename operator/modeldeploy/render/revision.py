"""Revision identity: the hash of exactly what changes the pods."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.api.base import ApiModel

HASH_LENGTH = 16
REVISION_HASH_LENGTH = 5


def spec_hash(spec: ModelDeploymentSpec, template: str = "") -> str:
    """16 hex chars of sha256 over the canonical JSON of model, runtime and resources, and of
    `template`: the operator's part of the pods (template_identity), so that a revision pins the
    images and template it was created with, and an operator upgrade that changes them makes a new
    revision, rolled out as a canary like any model change, instead of rolling-updating the stable.

    autoscaling and rollout are left out on purpose: editing them must not start a new revision.
    Fields at their default are left out too, so that writing a default explicitly (`format: onnx`)
    changes nothing, and an operator upgrade that adds a defaulted API field does not roll out
    every model in the cluster. Changing this function re-revisions everything: the golden test
    pins it.
    """
    pod_changing: dict[str, Any] = {part: _non_default(getattr(spec, part))
                                   for part in ("model", "runtime", "resources")}
    # allowDowngrade changes no pod: allowing a revert must not make the reverted spec another revision.
    pod_changing["model"].pop("allowDowngrade", None)
    if template:
        pod_changing["template"] = template
    canonical = json.dumps(pod_changing, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def _non_default(part: ApiModel) -> dict[str, Any]:
    return part.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def revision_name(name: str, spec_hash: str) -> str:
    """`<name>-<hash5>`: the Deployment and Service name of a revision."""
    return f"{name}-{spec_hash[:REVISION_HASH_LENGTH]}"
