"""Fault injection for tests of the canary machinery: off unless ``MODELSERVER_TEST_FAULTS=1``.

The variables below take effect only when the test-only flag ``MODELSERVER_TEST_FAULTS=1`` is set
too (the sandbox kubelet and the test suites set it). Without it they are ignored, with a warning
on stderr, so a production server never fails, slows down or crashes on purpose.

``MODELSERVER_FAULT_LATENCY_MS``  extra latency added to every infer request;
``MODELSERVER_FAULT_ERROR_RATE``  fraction (0..1) of infer requests answered 500, reason="injected";
``MODELSERVER_FAULT_LOAD_FAIL=1`` every model load fails, so the server exits non-zero;
``MODELSERVER_FAULT_CRASH_AFTER_S`` the process exits 1 this many seconds after it read its faults
                                (i.e. after start-up: a container that serves, then crashes).
``MODELSERVER_FAULT_METADATA_REDIRECT`` model metadata (``GET /v2/models/{m}``) answers 302 to this URL;
``MODELSERVER_FAULT_METADATA_BYTES`` model metadata answers are padded to this many bytes (still valid JSON):
                                what a pod trying to steer or exhaust the operator's gates would answer.
``MODELSERVER_FAULT_METRICS_STATUS`` ``GET /metrics`` answers this HTTP status (e.g. 403) with no metrics:
                                a pod whose metrics the operator cannot read.

The crash timer is armed only when the faults come from the process environment
(``from_env()`` without a mapping, as the server does at start-up): a test building ``Faults``
from a dict never arms it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass

TEST_FLAG = "MODELSERVER_TEST_FAULTS"
FAULT_PREFIX = "MODELSERVER_FAULT_"


def enabled(env: Mapping[str, str]) -> bool:
    """The explicit test-only switch: nothing else turns fault injection on."""
    return (env.get(TEST_FLAG) or "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    load_fail: bool = False
    crash_after_s: float = 0.0
    metadata_redirect: str = ""
    metadata_bytes: int = 0
    metrics_status: int = 0  # 0: /metrics answers normally

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.error_rate > 0

    @property
    def metadata_faulty(self) -> bool:
        return bool(self.metadata_redirect) or self.metadata_bytes > 0

    def metadata_answer(self, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, body, Location) of a model metadata answer: a redirect, or `body` (a JSON object) padded."""
        if self.metadata_redirect:
            return 302, b"", self.metadata_redirect.encode("latin-1")
        padding = b',"padding":""}'
        missing = self.metadata_bytes - len(body) - len(padding) + 1
        if missing > 0 and body.endswith(b"}"):
            body = body[:-1] + padding[:-2] + b" " * missing + padding[-2:]
        return 200, body, b""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults:
        process_env = env is None
        env = os.environ if env is None else env
        if not enabled(env):
            ignored = sorted(name for name, value in env.items() if name.startswith(FAULT_PREFIX) and value)
            if ignored:
                print(f"modelserver: warning: fault injection is off, ignoring {', '.join(ignored)} "
                      f"(set {TEST_FLAG}=1 in tests only)", file=sys.stderr, flush=True)
            return cls()
        faults = cls(
            latency_ms=max(0.0, float(env.get("MODELSERVER_FAULT_LATENCY_MS") or 0)),
            error_rate=min(1.0, max(0.0, float(env.get("MODELSERVER_FAULT_ERROR_RATE") or 0))),
            load_fail=(env.get("MODELSERVER_FAULT_LOAD_FAIL") or "").strip().lower() in ("1", "true", "yes"),
            crash_after_s=max(0.0, float(env.get("MODELSERVER_FAULT_CRASH_AFTER_S") or 0)),
            metadata_redirect=_header_value(env.get("MODELSERVER_FAULT_METADATA_REDIRECT") or ""),
            metadata_bytes=max(0, int(env.get("MODELSERVER_FAULT_METADATA_BYTES") or 0)),
            metrics_status=_error_status(env.get("MODELSERVER_FAULT_METRICS_STATUS") or ""),
        )
        if process_env:
            faults.arm_crash()
        return faults

    def arm_crash(self) -> threading.Timer | None:
        """Start the crash timer (a daemon thread) if ``crash_after_s`` is set."""
        if self.crash_after_s <= 0:
            return None
        timer = threading.Timer(self.crash_after_s, _crash, args=(self.crash_after_s,))
        timer.daemon = True
        timer.start()
        return timer


def _error_status(text: str) -> int:
    """An HTTP error status (400-599) from `text`, else 0 (no fault)."""
    status = int(text) if text.strip().isdigit() else 0
    return status if 400 <= status <= 599 else 0


def _header_value(text: str) -> str:
    """`text` if it can go into a Location header as it is (printable ASCII), else '' (no fault)."""
    text = text.strip()
    return text if text.isascii() and text.isprintable() else ""


def _crash(after_s: float) -> None:
    # os._exit: a crash skips the graceful drain and every cleanup, as a segfault or OOM would.
    print(
        f"modelserver: error: injected crash after {after_s:g}s (MODELSERVER_FAULT_CRASH_AFTER_S)",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)
