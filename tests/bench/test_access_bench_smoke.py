"""bench/access.py runs end to end on a few requests and prints its comparison (no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "access.py"


def test_the_access_bench_compares_guarded_and_open_servers_on_the_cached_path() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--requests", "100"], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"^  open +p50 +[0-9.]+ ms", out, re.MULTILINE), out
    assert re.search(r"^  guarded +p50 +[0-9.]+ ms", out, re.MULTILINE), out
    assert re.search(r"guarded - open p50: [-+][0-9.]+ ms +guarded / open p50: [0-9.]+x", out), out
    # One review for the first request, none after: the measured path is the cached one.
    assert "token reviews asked: 1 " in out, out
    assert re.search(r"in-process: dispatch \d+ ns, guard \+ dispatch \d+ ns", out), out
