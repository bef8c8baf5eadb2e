"""Which cluster and namespace a command talks to, found as kubectl finds them.

`--kubeconfig`, else `$KUBECONFIG` (a list of files, merged), else `~/.kube/config`; `--context`,
else the file's current context; `-n/--namespace`, else the context's namespace, else `default`.
In a pod (no kubeconfig flags given, `KUBERNETES_SERVICE_HOST` set) the ServiceAccount and its
namespace. When nothing is found the error says every place that was looked at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..kubeapi import KubeClient

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_NAMESPACE = "default"


class NoClusterConfig(Exception):
    """No usable kubeconfig or in-cluster configuration; the message names where it looked."""


def kubeconfig_files(explicit: str | None) -> tuple[list[Path], str]:
    """The kubeconfig files to merge and how they were chosen (`--kubeconfig`, `$KUBECONFIG`, the default)."""
    if explicit:
        return [Path(explicit).expanduser()], "--kubeconfig"
    from_env = os.environ.get("KUBECONFIG", "")
    if from_env:
        return [Path(p).expanduser() for p in from_env.split(os.pathsep) if p], "$KUBECONFIG"
    return [Path(DEFAULT_KUBECONFIG).expanduser()], "the default"


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()


def where_looked(explicit: str | None = None) -> str:
    """A sentence naming every place a configuration was looked for, and what was (not) there."""
    files, source = kubeconfig_files(explicit)
    found = "; ".join(f"{path} ({'exists' if path.is_file() else 'no such file'})" for path in files)
    places = f"kubeconfig from {source}: {found}"
    if explicit:
        return places
    service = "KUBERNETES_SERVICE_HOST is unset" if not os.environ.get("KUBERNETES_SERVICE_HOST") else \
        f"no token in {SERVICE_ACCOUNT_DIR}"
    return f"{places}; not in a pod ({service})"


FIX_WITH_FLAG = "pass --kubeconfig FILE or set KUBECONFIG=FILE"
FIX_WITH_ENV = "set KUBECONFIG=FILE (or run in a pod with a ServiceAccount)"


def require_config(explicit: str | None = None, fix: str = FIX_WITH_FLAG) -> None:
    """Raise :class:`NoClusterConfig` unless a kubeconfig file or the in-cluster ServiceAccount is there."""
    files, _ = kubeconfig_files(explicit)
    if (not explicit and in_cluster()) or any(path.is_file() for path in files):
        return
    raise NoClusterConfig(f"no cluster configuration found: {where_looked(explicit)}; {fix}")


@dataclass(frozen=True)
class Target:
    """A client for the chosen cluster and the namespace commands default to."""

    kube: KubeClient
    namespace: str  # the context's namespace (or the pod's); `default` when the context names none
    context: str | None  # the kubeconfig context used; None in a pod or with --server


def connect(kubeconfig: str | None = None, context: str | None = None, server: str | None = None,
            user_agent: str = "kubectl-modeldeploy", fix: str = FIX_WITH_FLAG) -> Target:
    """Load the configuration kubectl would use and make a client for it (imports the kubernetes client)."""
    import kubernetes
    import yaml

    from ..kubeapi import KubeClient

    configuration = kubernetes.client.Configuration()
    if server and not (kubeconfig or context):
        configuration.host = server  # no credentials: for a local, unauthenticated API server
        return Target(KubeClient(api_client=kubernetes.client.ApiClient(configuration), user_agent=user_agent),
                      DEFAULT_NAMESPACE, None)
    if not (kubeconfig or context) and in_cluster():
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or DEFAULT_NAMESPACE
        return Target(KubeClient(api_client=kubernetes.client.ApiClient(configuration), user_agent=user_agent),
                      namespace, None)
    require_config(kubeconfig, fix)
    files, _ = kubeconfig_files(kubeconfig)
    joined = os.pathsep.join(str(path) for path in files)
    try:
        contexts, current = kubernetes.config.list_kube_config_contexts(config_file=joined)
        chosen = current if context is None else next((c for c in contexts or [] if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts or [])) or "none"
            raise NoClusterConfig(f"context {context!r} is not in the kubeconfig ({joined}); its contexts: {names}")
        kubernetes.config.load_kube_config(config_file=joined, context=chosen.get("name"),
                                           client_configuration=configuration, persist_config=False)
    except (kubernetes.config.ConfigException, yaml.YAMLError, OSError) as error:
        text = " ".join(str(error).split())
        raise NoClusterConfig(f"the kubeconfig {joined} cannot be used: {text}") from None
    if server:
        configuration.host = server
    namespace = (chosen.get("context") or {}).get("namespace") or DEFAULT_NAMESPACE
    return Target(KubeClient(api_client=kubernetes.client.ApiClient(configuration), user_agent=user_agent),
                  namespace, str(chosen.get("name")))
