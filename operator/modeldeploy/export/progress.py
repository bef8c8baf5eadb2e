"""Step lines on the terminal: `[2/5] exporting to ONNX ... ok (1.9s): opset 18, 11.2 KiB`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Step:
    detail: str = ""


class Progress:
    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.index = 0
        self.stream = stream

    def _start(self, title: str) -> None:
        self.index += 1
        self.stream.write(f"[{self.index}/{self.total}] {title} ... ")
        self.stream.flush()

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Print the step title, run the body, then `ok (time)` or `failed (time)`."""
        self._start(title)
        started = time.perf_counter()
        result = Step()
        try:
            yield result
        except BaseException:
            self.stream.write(f"failed ({time.perf_counter() - started:.1f}s)\n")
            raise
        suffix = f": {result.detail}" if result.detail else ""
        self.stream.write(f"ok ({time.perf_counter() - started:.1f}s){suffix}\n")
        self.stream.flush()

    def skip(self, title: str, why: str) -> None:
        self._start(title)
        self.stream.write(f"skipped ({why})\n")

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
