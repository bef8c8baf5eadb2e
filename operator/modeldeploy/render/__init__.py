"""Pure rendering: a ModelDeployment spec in, Kubernetes manifests and runtime configs out.

No I/O, no clock, no randomness: the same arguments always give equal dicts.
"""

from .containers import model_name
from .deployment import Role, render_deployment
from .hpa import QUEUE_TIME_METRIC, render_hpa
from .images import RuntimeImages
from .labels import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    REVISION_LABEL,
    ROLE_LABEL,
    SPEC_HASH_ANNOTATION,
    Owner,
    child_labels,
    owner_reference,
    selector,
)
from .pdb import render_pdb
from .revision import revision_name, spec_hash
from .service import render_main_service, render_revision_service

__all__ = [
    "MANAGED_BY", "MANAGED_BY_LABEL", "NAME_LABEL", "QUEUE_TIME_METRIC", "REVISION_LABEL", "ROLE_LABEL",
    "SPEC_HASH_ANNOTATION", "Owner", "Role", "RuntimeImages", "child_labels", "model_name", "owner_reference",
    "render_deployment", "render_hpa", "render_main_service", "render_pdb", "render_revision_service",
    "revision_name", "selector", "spec_hash",
]
