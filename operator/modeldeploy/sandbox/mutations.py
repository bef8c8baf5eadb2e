"""Pure object transformations of the API server: patch types and system-managed metadata."""

from __future__ import annotations

import copy
import datetime
import json
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer

# What the API server owns in metadata: clients cannot set or change it through writes.
SYSTEM_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's alphabet: no vowels, no look-alikes


class PatchError(ValueError):
    """A patch cannot be applied (422 Invalid), or a JSON-patch `test` op failed (also 422)."""


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Mapping[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch; every failure (incl. a failed ``test``) is a :class:`PatchError`."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    try:
        result = jsonpatch.apply_patch(copy.deepcopy(dict(target)), ops)
    except jsonpatch.JsonPatchTestFailed as e:
        raise PatchError(f"the test operation failed: {e}") from e
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError) as e:
        raise PatchError(f"the JSON patch cannot be applied: {e}") from e
    if not isinstance(result, dict):
        raise PatchError("the JSON patch did not produce an object")
    return result


def same(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``False`` is not ``0`` and ``1`` is not ``1.0``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything whose change bumps ``metadata.generation``: all but metadata, status and type info."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as compared for no-op detection: a write changing nothing bumps nothing."""
    result = dict(obj)
    result["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return result


def keep_system_fields(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Restore what clients may not change: identity, type, system metadata (values or absence)."""
    new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
    meta = new["metadata"] = dict(new.get("metadata") or {})
    old_meta = old["metadata"]
    for key in ("name", "namespace", *SYSTEM_METADATA):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("resourceVersion", None)
    return new


def owner_uids(obj: Mapping[str, Any]) -> set[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return {str(ref["uid"]) for ref in refs if isinstance(ref, Mapping) and ref.get("uid")}
