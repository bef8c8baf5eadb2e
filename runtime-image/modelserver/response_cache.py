"""Triton's response cache (``response_cache { enable: true }`` in config.pbtxt).

One byte-bounded LRU shared by every model that enables it, like Triton's ``local`` cache
(``--cache-config local,size=N``). The key is a hash of the model name and version, every
input's name, datatype, shape and bytes, and the requested outputs: two requests share a
result only when all of these agree. A hit answers without queueing or running the model.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
Outputs = dict[str, Array]
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
_OBJECT_OVERHEAD = 64  # rough per-element cost of a BYTES (object) element besides its bytes


def parse_cache_config(text: str) -> int:
    """``local,size=BYTES`` (Triton's ``--cache-config`` spelling) -> the size; 0 disables."""
    kind, _, rest = text.partition(",")
    if kind.strip() != "local":
        raise ValueError(f"--cache-config: only the 'local' cache exists here, got {kind.strip()!r}")
    settings = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
    unknown = sorted(set(settings) - {"size"})
    if unknown or "size" not in settings:
        raise ValueError(f"--cache-config: expected local,size=BYTES, got {text!r}")
    size = settings["size"].strip()
    if not size.isdigit():
        raise ValueError(f"--cache-config: size must be a number of bytes, got {size!r}")
    return int(size)


def _array_bytes(a: Array) -> int:
    if a.dtype == np.object_:
        return sum(len(x) if isinstance(x, bytes | str) else 8 for x in a.flat) + _OBJECT_OVERHEAD * a.size
    return int(a.nbytes)


def _feed_bytes(a: Array) -> bytes:
    if a.dtype == np.object_:  # BYTES: length-prefix each element so ["ab","c"] != ["a","bc"]
        parts = []
        for x in a.flat:
            b = x if isinstance(x, bytes) else str(x).encode()
            parts.append(len(b).to_bytes(8, "little"))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(a).tobytes()


class ResponseCache:
    """LRU of request hash -> outputs, bounded by the outputs' bytes. Used on the event loop only."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self.evictions = 0
        self._entries: collections.OrderedDict[bytes, tuple[Outputs, int]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(model: str, version: int, feeds: Mapping[str, Array], outputs: list[str] | None) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{model}\0{version}\0".encode())
        for name in sorted(feeds):
            a = feeds[name]
            h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
            h.update(_feed_bytes(a))
        h.update(b"\0outputs\0" + ("\0".join(outputs).encode() if outputs is not None else b"*"))
        return h.digest()

    def get(self, key: bytes) -> Outputs | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return dict(entry[0])  # a new dict: callers may not change the cached one

    def put(self, key: bytes, outputs: Outputs) -> bool:
        """Store a copy (batch results are views into the whole batch); False when it cannot fit."""
        size = sum(_array_bytes(a) for a in outputs.values())
        if size > self.max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.used_bytes -= old[1]
        while self._entries and self.used_bytes + size > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.used_bytes -= evicted
            self.evictions += 1
        copied = {n: np.array(a, copy=True) for n, a in outputs.items()}
        for a in copied.values():
            a.setflags(write=False)
        self._entries[key] = (copied, size)
        self.used_bytes += size
        return True

    def clear(self) -> None:
        """Forget everything (a model was reloaded: its old answers may no longer hold)."""
        self._entries.clear()
        self.used_bytes = 0
