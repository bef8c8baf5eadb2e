"""API users other than the admin: a ServiceAccount with every right in one namespace, by token.

The fault proxy forwards the client's own ``Authorization`` header, so clients that go through it
authenticate with a bearer token (the admin's client certificate cannot be forwarded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes.client

from modeldeploy.kubeapi import KubeClient


def namespace_user_token(admin: KubeClient, namespace: str, name: str = "tester") -> str:
    """A ServiceAccount bound to a Role with all verbs on all resources of ``namespace``; its token."""
    meta = {"name": name, "namespace": namespace}
    admin.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                  "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    admin.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                  "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    answer = admin.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                           body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": 3600}})
    return str(answer["status"]["token"])


def token_client(server: str, token: str, ca_path: Path | None = None, **kwargs: Any) -> KubeClient:
    """The operator's API client for ``server`` (the apiserver, or the fault proxy) with ``token``."""
    configuration = kubernetes.client.Configuration()
    configuration.host = server
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    if ca_path is not None:
        configuration.ssl_ca_cert = str(ca_path)
    return KubeClient(api_client=kubernetes.client.ApiClient(configuration), **kwargs)
