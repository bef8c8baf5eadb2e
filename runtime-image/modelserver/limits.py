"""The per-request memory bound: what decoding a request may allocate, estimated before it does.

Every decoder asks ``MemoryBudget.charge`` before it allocates for an input, so a tiny request
that declares a huge shape is refused from its header alone. The estimates are upper bounds
of what CPython and numpy will hold for the decoded inputs (the body itself is not counted: it
is already bounded by ``--max-request-bytes``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from modelserver.errors import RequestTooLarge

log = logging.getLogger("modelserver.limits")

DEFAULT_MAX_REQUEST_MEMORY = 256 * 1024 * 1024

# A decoded BYTES element: one pointer in the object array plus a str object.
BYTES_ELEMENT_OVERHEAD = 8 + sys.getsizeof("")

# Parsing JSON (orjson): an upper bound measured with tracemalloc over the worst shapes of
# JSON text: per value (one per ',' and per '['; also covers its numpy element later), per
# '{', and per byte of text (long strings, big numbers, escapes). The worst value-dense text
# ("[],[]" and "{},{}") parses into about 36 bytes per byte of text; these give 50-60.
_JSON_PER_VALUE = 64
_JSON_PER_OBJECT = 128
_JSON_PER_BYTE = 16
# The most the estimate can charge per byte of text ("{" alone); below limit / this the scan
# is skipped (the hot path of small requests).
_JSON_WORST_PER_BYTE = _JSON_PER_VALUE + _JSON_PER_OBJECT + _JSON_PER_BYTE


class MemoryBudget:
    """The bytes one request's decoded inputs may take; ``charge`` raises once exceeded."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, what: str, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise RequestTooLarge(
                f"{what}: decoding needs about {nbytes} bytes, over the per-request memory bound "
                f"of {self.limit} bytes (--max-request-memory)"
            )

    def charge_json(self, header: bytes | memoryview) -> None:
        """Bound what parsing this JSON text would allocate, before parsing it."""
        size = len(header)
        if size * _JSON_WORST_PER_BYTE <= self.limit - self.used:
            return
        data = header if isinstance(header, bytes) else bytes(header)
        values = data.count(b",") + data.count(b"[") + 1
        objects = data.count(b"{")
        self.charge("request JSON", values * _JSON_PER_VALUE + objects * _JSON_PER_OBJECT + size * _JSON_PER_BYTE)


def bytes_tensor_size(count: int, data_bytes: int) -> int:
    """Decoded size of a BYTES tensor of ``count`` elements holding ``data_bytes`` of text."""
    return count * BYTES_ELEMENT_OVERHEAD + data_bytes


# glibc's mallopt parameter for the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks_to_the_os() -> bool:
    """Pin glibc's mmap threshold at 128 KiB, so every large block (a request body, a decoded
    tensor, a protobuf arena) is mmapped and given back to the OS when freed.

    By default glibc raises the threshold each time such a block is freed (up to 32 MiB); later
    large blocks then come from the heap, and a burst of big requests leaves the RSS hundreds
    of MB above idle for good (measured by the fuzz test). False where this is not glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl has no mallopt
        log.info("mallopt is not available: freed memory returns to the OS at the allocator's pace")
        return False
