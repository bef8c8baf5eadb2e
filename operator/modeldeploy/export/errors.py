"""The one exception type the export stages raise for problems the user can fix."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ExportError(Exception):
    """A user-facing failure: its message is printed as one line, without a traceback."""


def one_line(text: str, limit: int = 300) -> str:
    """Collapse an (often multi-line, colourised) library message into one short line."""
    flat = " ".join(_ANSI.sub("", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """`Type: message` on one line, for wrapping third-party exceptions."""
    message = one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
