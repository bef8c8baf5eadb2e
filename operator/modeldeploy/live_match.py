"""Whether a live object already holds what the operator wants, in the apiserver's stored forms.

The apiserver defaults fields, drops empty maps and lists, and canonicalises quantities, so "the
live object contains the desired one" is not plain equality: :func:`is_subset` is what
:meth:`modeldeploy.kubeapi.KubeClient.apply` asks before it writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api.types import parse_quantity

# Where built-in kinds hold a resource.Quantity: the apiserver stores those canonicalised ("0.5" ->
# "500m", "1024Mi" -> "1Gi"), so they are compared by value, or every apply would patch again.
_QUANTITY_MAPS = {("resources", "requests"), ("resources", "limits")}
_QUANTITY_FIELDS = {("target", "averageValue"), ("target", "value"), ("emptyDir", "sizeLimit")}


def _is_quantity(path: tuple[str, ...]) -> bool:
    return path[-3:-1] in _QUANTITY_MAPS or path[-2:] in _QUANTITY_FIELDS


def _same_quantity(desired: Any, live: Any) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return False
    try:
        return parse_quantity(desired) == parse_quantity(live)
    except ValueError:
        return False


def _has(live: Mapping[str, Any], key: str, value: Any, path: tuple[str, ...]) -> bool:
    """Whether `live[key]` already is what a merge patch of `{key: value}` would make it."""
    if value is None:
        return live.get(key) is None
    if value == {} or value == []:
        # The apiserver drops empty maps and lists (`labels: {}`); merging {} into a map changes nothing.
        current = live.get(key)
        return current is None or current == value or (value == {} and isinstance(current, Mapping))
    return key in live and is_subset(value, live[key], (*path, key))


def is_subset(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether every field of ``desired`` is already in ``live`` with the same value.

    Dicts: each desired key must match (a desired ``None`` matches an absent key, as a merge
    patch would delete it; so does an empty map or list, which the apiserver does not store);
    lists: same length and element-wise subsets (so server-defaulted fields inside list items,
    e.g. a port's ``protocol``, do not count as a difference); scalars: equal; quantities of
    built-in kinds (resources, HPA targets): equal in value.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(_has(live, key, value, path) for key, value in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v, path) for d, v in zip(desired, live, strict=True))
        )
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live  # in Python True == 1; in JSON they differ
    if desired != live and _is_quantity(path):
        return _same_quantity(desired, live)
    return bool(desired == live)
