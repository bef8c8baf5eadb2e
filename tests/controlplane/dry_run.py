"""Asking the API server what it would do with a ModelDeployment, without storing anything (dryRun=All)."""

from __future__ import annotations

from typing import Any

from modeldeploy.api import API_VERSION, KIND
from modeldeploy.kubeapi import Invalid, KubeClient


def create(kube: KubeClient, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would store it: defaulted, validated. Raises Invalid on a refusal."""
    path = kube.kind_info(API_VERSION, KIND).path(obj["metadata"]["namespace"])
    return dict(kube.request("POST", path, body=obj, query=[("dryRun", "All")]))


def refusal(kube: KubeClient, obj: dict[str, Any]) -> str | None:
    """The API server's message if it refuses the object (422), None if it accepts it."""
    try:
        create(kube, obj)
    except Invalid as error:
        return error.message
    return None
