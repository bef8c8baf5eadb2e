"""Which ModelDeployments this operator replica serves: its shard.

Two kinds of shards, both rendered by the chart's ``shards`` value (one operator Deployment and one
kopf peering name per shard):

- namespace shards: each shard's replicas run with their own ``--namespace`` list. Nothing is
  filtered here; the process is unsharded as far as labels go (``Shard()``).
- label shards: a shard serves the ModelDeployments whose ``modeldeploy.dev/shard`` label is its value
  (``MODELDEPLOY_SHARD``). An object with no such label, or with a value that names no shard, is
  served by nobody -- unless one shard is the default (``MODELDEPLOY_SHARD_DEFAULT=true``): it also
  serves every object whose label names none of the other shards (``MODELDEPLOY_SHARDS``, the label
  values of every shard of the release). The default shard's selector is therefore
  ``modeldeploy.dev/shard notin (<the others>)``, which in Kubernetes also matches objects without
  the label: every ModelDeployment belongs to exactly one shard, with one server-side selector.

``MODELDEPLOY_SHARD`` unset: every ModelDeployment in the watched namespaces (no label sharding).

kopf must watch only the shard's ModelDeployments (:meth:`Shard.configure_kopf`), and a reconcile must
check :meth:`Shard.owns` on the object it read: a relabel reaches kopf, the cache and the child watches
in no fixed order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

SHARD_LABEL = "modeldeploy.dev/shard"
# A label value (the apiserver's own rule), non-empty.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_TRUE, _FALSE = ("true", "1", "yes"), ("", "false", "0", "no")


class ShardConfigError(ValueError):
    """The shard settings in the environment are invalid; the message names the variable."""


@dataclass(frozen=True)
class Shard:
    label_value: str | None = None
    # The default shard also serves objects whose label names none of ``other_values``.
    default: bool = False
    other_values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.default and self.label_value is None:
            raise ShardConfigError("MODELDEPLOY_SHARD_DEFAULT=true needs MODELDEPLOY_SHARD (the default shard's "
                                   "own label value)")
        if self.label_value is not None and self.label_value in self.other_values:
            raise ShardConfigError(f"MODELDEPLOY_SHARDS: this shard's own value {self.label_value!r} is listed as "
                                   "another shard's")

    def owns(self, labels: Mapping[str, str] | None) -> bool:
        if self.label_value is None:
            return True
        value = (labels or {}).get(SHARD_LABEL)
        if self.default:
            return value not in self.other_values
        return value == self.label_value

    def kopf_filters(self) -> dict[str, Any]:
        """Keyword arguments for the kopf decorators of ModelDeployment handlers."""
        if self.label_value is None:
            return {}
        if self.default:
            # kopf calls a callable label filter with None when the label is absent.
            return {"labels": {SHARD_LABEL: self._owns_value}}
        return {"labels": {SHARD_LABEL: self.label_value}}

    def _owns_value(self, value: str | None, **_: Any) -> bool:
        return value not in self.other_values

    def label_selector(self) -> str | None:
        """For the API's list/watch of ModelDeployments (server-side filtering)."""
        if self.label_value is None:
            return None
        if self.default:
            if not self.other_values:
                return None  # the only shard: it owns everything
            return f"{SHARD_LABEL} notin ({','.join(sorted(self.other_values))})"
        return f"{SHARD_LABEL}={self.label_value}"

    def configure_kopf(self, settings: kopf.OperatorSettings, group: str, plural: str) -> None:
        """Filter kopf's own watch of ModelDeployments on the server, like the cache's (call at startup).

        With it, a shard never sees another's objects (nor takes an older operator's finalizer off
        them); a relabelled object leaves the old shard's watches (a DELETED event: the cache's ends its
        daemon) and enters the new one's, whose kopf starts a daemon for it.
        """
        selector = self.label_selector()
        if selector is not None:
            settings.watching.label_selectors[group, plural] = selector


def _label_value(name: str, value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ShardConfigError(f"{name}: {value!r} is not a label value (at most 63 characters: letters, digits, "
                               "'-', '_', '.', starting and ending with a letter or digit)")
    return value


def shard_from_env(environ: Mapping[str, str] = os.environ) -> Shard:
    value = environ.get("MODELDEPLOY_SHARD", "").strip()
    default_text = environ.get("MODELDEPLOY_SHARD_DEFAULT", "").strip().lower()
    if default_text not in _TRUE + _FALSE:
        raise ShardConfigError(f"MODELDEPLOY_SHARD_DEFAULT: {default_text!r} is not a boolean (true or false)")
    all_values = {_label_value("MODELDEPLOY_SHARDS", v.strip())
                  for v in environ.get("MODELDEPLOY_SHARDS", "").split(",") if v.strip()}
    if not value:
        return Shard(default=default_text in _TRUE)  # raises when default is set without a value
    own = _label_value("MODELDEPLOY_SHARD", value)
    return Shard(own, default=default_text in _TRUE, other_values=frozenset(all_values - {own}))
