"""Bounded, expiring memory of TokenReview verdicts: a repeated token costs one dict lookup, not an API call.

Bounded in time (``ttl_s``, and never past the token's own ``exp``) and in size (``max_entries``: the oldest
entry goes first), so neither a revoked token nor a flood of distinct tokens outlives the bounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["allowed", "unauthenticated", "forbidden"]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    message: str = ""  # why the caller was refused (empty when allowed)
    caller: str = ""  # the reviewed identity, e.g. system:serviceaccount:ns:name

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


class VerdictCache:
    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0:
            raise ValueError(f"verdict cache ttl must be >= 0 seconds, got {ttl_s}")
        if max_entries < 1:
            raise ValueError(f"verdict cache size must be >= 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[bytes, tuple[float, Verdict]] = {}  # insertion order = age

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: bytes) -> Verdict | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._entries[token]
            return None
        return entry[1]

    def put(self, token: bytes, verdict: Verdict, token_expires_in_s: float | None = None) -> None:
        """Remember ``verdict`` for ttl_s, or until the token itself expires if that is sooner."""
        life = self.ttl_s if token_expires_in_s is None else min(self.ttl_s, token_expires_in_s)
        if life <= 0:
            return
        entries = self._entries
        entries.pop(token, None)  # a refreshed entry becomes the youngest
        while len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[token] = (self.clock() + life, verdict)
