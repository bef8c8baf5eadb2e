"""Fault injection for tests of the canary machinery (never set these in production).

``MODELSERVER_FAULT_LATENCY_MS``  extra latency added to every infer request;
``MODELSERVER_FAULT_ERROR_RATE``  fraction (0..1) of infer requests answered 500, reason="injected";
``MODELSERVER_FAULT_LOAD_FAIL=1`` every model load fails, so the server exits non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    load_fail: bool = False

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.error_rate > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults:
        env = os.environ if env is None else env
        return cls(
            latency_ms=max(0.0, float(env.get("MODELSERVER_FAULT_LATENCY_MS") or 0)),
            error_rate=min(1.0, max(0.0, float(env.get("MODELSERVER_FAULT_ERROR_RATE") or 0))),
            load_fail=(env.get("MODELSERVER_FAULT_LOAD_FAIL") or "").strip().lower() in ("1", "true", "yes"),
        )
