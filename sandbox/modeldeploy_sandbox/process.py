"""One container as a real local process: the command line, paths and environment it gets, and
the process itself (own process group, log file, termination message).

The sandbox has no images: every container is taken to be the modelserver image, whose entrypoint
is ``modelserver``. So a container's ``args`` become ``python -m modelserver ARGS`` with:

- each volume mount path (``/models``, ``/tmp``, ...) in an argument mapped to the pod's
  directory for that volume;
- ``serve`` bound to the pod's loopback address (``--host 127.0.0.N``);
- ``fetch`` writing its failure line to the container's termination log (in a pod the kubelet
  mounts ``/dev/termination-log``, fetch's default);
- ``--device cuda`` (what the operator renders for GPU pods) served on the CPU: the sandbox's GPU
  nodes are scheduling targets only, with no CUDA behind them;
- an environment built from scratch (PATH, HOME, TMPDIR + the container's ``env``): nothing of the
  test process leaks in, e.g. a ``MODELSERVER_FAULT_*`` variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

MODELSERVER = "modelserver"
# What the kubelet keeps of a container's log as its FallbackToLogsOnError message.
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
TERMINATION_LOG_BYTES = 4096
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class UnsupportedContainer(Exception):
    """The sandbox cannot run this container (not the modelserver image); reported as StartError."""


@dataclasses.dataclass(frozen=True)
class Launch:
    """Everything needed to start one attempt of a container."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    log_path: Path
    termination_log: Path
    message_policy: str  # File | FallbackToLogsOnError


def _map_path(arg: str, mounts: list[tuple[str, Path]]) -> str:
    """``/models/x`` -> ``<pod>/volumes/model-repository/x``; also in ``--flag=/models`` form."""
    prefix, eq, value = arg.partition("=")
    if eq and prefix.startswith("-"):
        return f"{prefix}={_map_path(value, mounts)}"
    for mount_path, local in mounts:  # longest mount path first
        if arg == mount_path or arg.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + arg[len(mount_path.rstrip("/")) :]
    return arg


def _argv(container: Mapping[str, Any], python: str) -> list[str]:
    command = list(container.get("command") or [])
    args = [str(arg) for arg in container.get("args") or []]
    if command:
        if Path(command[0]).name != MODELSERVER:
            raise UnsupportedContainer(
                f"the sandbox runs only the modelserver image; cannot run command {command[0]!r}"
            )
        args = [*command[1:], *args]
    return [python, "-m", MODELSERVER, *args]


def _on_cpu(argv: list[str]) -> list[str]:
    """``--device cuda`` / ``--device=cuda`` -> cpu (see the module docstring)."""
    out = list(argv)
    for index, arg in enumerate(out):
        if arg == "--device=cuda":
            out[index] = "--device=cpu"
        elif arg == "cuda" and index > 0 and out[index - 1] == "--device":
            out[index] = "cpu"
    return out


def plan_launch(
    container: Mapping[str, Any],
    *,
    volumes: Mapping[str, Path],
    address: str,
    pod_dir: Path,
    attempt: int,
    python: str = sys.executable,
    cluster_env: Mapping[str, str] | None = None,
) -> Launch:
    """Translate a container spec into a :class:`Launch` (raises :class:`UnsupportedContainer`)."""
    name = str(container["name"])
    mounts = sorted(
        (
            (str(m["mountPath"]), volumes[m["name"]])
            for m in container.get("volumeMounts") or []
            if m["name"] in volumes
        ),
        key=lambda item: -len(item[0]),
    )
    # Only the container's arguments live in the pod's filesystem: the interpreter is the host's
    # (it may itself sit under /tmp, e.g. a CI checkout there, and must not be remapped).
    interpreter, *arguments = _argv(container, python)
    argv = [interpreter, *(_map_path(arg, mounts) for arg in arguments)]
    subcommand = argv[3] if len(argv) > 3 else ""
    termination_log = pod_dir / "termination-log" / f"{name}-{attempt}"
    if subcommand == "serve":
        argv = [*_on_cpu(argv), "--host", address]
    elif subcommand == "fetch":
        argv += ["--termination-log", str(termination_log)]
    tmp = dict(mounts).get("/tmp") or pod_dir / "tmp"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(pod_dir / "home"),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # The sandbox is a test bed: MODELSERVER_FAULT_* set through runtime.env take effect here only.
        "MODELSERVER_TEST_FAULTS": "1",
        # What every kubelet sets, enableServiceLinks or not: where the API server is (KUBERNETES_SERVICE_*).
        **(cluster_env or {}),
    }
    for var in container.get("env") or []:
        if "value" in var:  # valueFrom (secrets, fields) is not supported in the sandbox
            env[str(var["name"])] = str(var["value"])
    return Launch(
        name=name,
        argv=tuple(argv),
        env=env,
        cwd=pod_dir,
        log_path=pod_dir / "logs" / f"{name}-{attempt}.log",
        termination_log=termination_log,
        message_policy=str(container.get("terminationMessagePolicy") or "File"),
    )


def tail(path: Path, lines: int = FALLBACK_LOG_LINES, limit: int = FALLBACK_LOG_BYTES) -> str:
    """The last ``lines`` lines of a log, at most ``limit`` bytes (the kubelet's fallback message)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    text = b"\n".join(data.splitlines()[-lines:])[-limit:]
    return text.decode(errors="replace")


class ContainerProcess:
    """A started container attempt. The process leads its own group: signals reach its children."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        for directory in (launch.log_path.parent, launch.termination_log.parent, launch.cwd / "home"):
            directory.mkdir(parents=True, exist_ok=True)
        Path(launch.env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        launch.termination_log.write_bytes(b"")  # fetch writes only to an existing file, as to /dev/termination-log
        self.started_at = time.time()
        self.finished_at: float | None = None
        self._log: IO[bytes] = launch.log_path.open("wb")
        try:
            self.popen = subprocess.Popen(
                launch.argv,
                cwd=launch.cwd,
                env=dict(launch.env),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The container's exit code once it exited (128+N for signal N, as runtimes report), else None."""
        if self.popen.returncode is None:
            try:  # peek without reaping: while the leader is a zombie, its group id cannot be reused
                if os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                    return None
                self.signal(signal.SIGKILL)  # anything it left behind in its group goes with it
            except ChildProcessError:
                pass  # already reaped: Popen knows the code
        code = self.popen.wait()
        if self.finished_at is None:
            self.finished_at = time.time()
            self._log.close()
        return 128 - code if code < 0 else code

    def rss(self) -> int:
        """Resident memory of the container's process, in bytes (0 once it is gone)."""
        try:
            return int((Path("/proc") / str(self.popen.pid) / "statm").read_text().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            return 0

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the exit; the exit code or None."""
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return code

    def kill_and_reap(self, grace: float) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps."""
        if self.poll() is None:
            self.signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self.signal(signal.SIGKILL)
        code = self.wait(10)
        if code is None:  # unkillable (uninterruptible sleep): give up rather than hang the caller
            raise RuntimeError(f"container {self.launch.name} (pid {self.popen.pid}) survived SIGKILL")
        return code

    def message(self, exit_code: int) -> str:
        """The termination message: the termination log, else (FallbackToLogsOnError, failed) the log tail."""
        try:
            written = self.launch.termination_log.read_bytes()[:TERMINATION_LOG_BYTES].decode(errors="replace")
        except OSError:
            written = ""
        if written.strip():
            return written.strip()
        if self.launch.message_policy == "FallbackToLogsOnError" and exit_code != 0:
            return tail(self.launch.log_path).strip()
        return ""
