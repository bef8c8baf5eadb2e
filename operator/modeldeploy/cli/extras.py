"""Which pip extra a command needs, said in one line when its modules are not installed.

A base install (`pip install modeldeploy`, no extras) has pydantic and PyYAML only: enough for
`modeldeploy crd`. Every other command imports a library of one extra; when that import fails the
user reads which extra to install, not a ModuleNotFoundError traceback.
"""

from __future__ import annotations

import importlib.metadata
import sys

DISTRIBUTION = "modeldeploy"

# The extra (pyproject.toml [project.optional-dependencies]) that provides each command's imports.
OPERATOR = "operator"  # kubectl-modeldeploy, modeldeploy run: kubernetes, kopf
EXPORT = "export"  # modeldeploy export: torch, onnx
RUNTIME = "runtime"  # modelserver serve: onnxruntime, grpc, aiohttp
# The local sandbox (modeldeploy demo, modeldeploy sandbox) runs the operator and modelserver both.
SANDBOX_EXTRAS = ("demo", "dev")


def provided_extras() -> set[str]:
    """The extras the installed distribution declares (empty when it is not installed, e.g. run from a checkout)."""
    try:
        return set(importlib.metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or [])
    except importlib.metadata.PackageNotFoundError:
        return set()


def sandbox_extra() -> str:
    """`demo` when the installed distribution has it (only what the demo needs), else `dev`."""
    declared = provided_extras()
    return next((extra for extra in SANDBOX_EXTRAS if extra in declared), SANDBOX_EXTRAS[-1])


def missing_module(error: ImportError) -> str:
    """The top-level module that could not be imported ("kubernetes" for kubernetes.client)."""
    name = getattr(error, "name", None) or str(error)
    return name.split(".")[0]


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def missing_extra_message(command: str, extra: str, error: ImportError, hint: str | None = None) -> str:
    """One line: what is missing, which extra provides it, the pip command (or ``hint``)."""
    return (f"{command}: needs the '{extra}' extra (missing Python module {missing_module(error)!r}): "
            f"{hint or install_hint(extra)}")


def report_missing_extra(command: str, extra: str, error: ImportError) -> int:
    """Print :func:`missing_extra_message` on stderr; the exit status for a missing dependency (2)."""
    print(missing_extra_message(command, extra, error), file=sys.stderr)
    return 2
