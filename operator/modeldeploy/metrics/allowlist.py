"""Which Prometheus servers the operator may query: an admin's allow-list, never the spec alone.

`provider.address` is written by whoever may edit a ModelDeployment; without this list the operator
would send requests wherever it says (SSRF). The list comes from the operator's settings (chart
value `prometheus.allowedAddresses`, env MODELDEPLOY_PROMETHEUS_ADDRESSES, comma-separated). An entry
is a base URL: an address is allowed when its scheme and host equal the entry's, its port equals
the entry's (any port when the entry names none) and its path starts with the entry's path. An
empty list allows no Prometheus at all: the direct provider needs none.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping, Sequence

ADDRESSES_ENV = "MODELDEPLOY_PROMETHEUS_ADDRESSES"


def addresses_from_env(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(entry.strip() for entry in environ.get(ADDRESSES_ENV, "").split(",") if entry.strip())


def _parts(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    return parts.scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


def allowed(address: str, allow_list: Sequence[str]) -> bool:
    """`address` matches an entry of `allow_list` (see the module docstring)."""
    wanted = _parts(address)
    if wanted is None:
        return False
    scheme, host, port, path = wanted
    for entry in allow_list:
        rule = _parts(entry)
        if rule is None:
            continue
        if (scheme, host) == rule[:2] and rule[2] in (None, port) and \
                (path == rule[3] or path.startswith(rule[3] + "/")):
            return True
    return False


def refusal(address: str, allow_list: Sequence[str]) -> str:
    """The status message of a refused address: what to change, and where."""
    listed = ", ".join(allow_list) if allow_list else "empty"
    return (f"rollout.analysis.provider.address {address} is not in the operator's Prometheus allow-list "
            f"({listed}): an admin adds it to the chart value prometheus.allowedAddresses")
