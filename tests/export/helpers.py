"""Running `modeldeploy export` in-process and capturing what a terminal would show."""

from __future__ import annotations

import argparse
import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.export.cli import add_arguments, run

from . import fixtures_models

FIXTURES_MODULE = fixtures_models.__name__
# The directory that makes FIXTURES_MODULE importable (for subprocesses' PYTHONPATH).
IMPORT_ROOT = Path(fixtures_models.__file__).parents[len(FIXTURES_MODULE.split(".")) - 1]


def model_path(attr: str) -> str:
    return f"{FIXTURES_MODULE}:{attr}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modeldeploy export")
    add_arguments(p)
    return p


def export(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(parser().parse_args(list(argv)))
    return Result(code, out.getvalue(), err.getvalue())
