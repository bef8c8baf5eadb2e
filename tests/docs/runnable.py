"""The shell blocks of README.md and docs/*.md that are marked runnable, as the docs test runs them.

A block is runnable when the line before its opening fence is an HTML comment (invisible on GitHub)::

    <!-- runnable -->
    <!-- runnable: needs samples/cpu-onnx.yaml -->

``needs`` lists files (relative to the repository root) that are applied first, for blocks that show
commands about an object the page does not create itself (troubleshooting's ``resnet``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^<!-- runnable(?:: needs (?P<needs>[^>]*?))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$",
                    re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"^<!-- runnable\b[^>]*-->$", re.MULTILINE)  # a line of its own, as before a block


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    language: str
    script: str
    needs: tuple[str, ...]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        needs = tuple((match.group("needs") or "").split())
        line = text.count("\n", 0, match.start()) + 2
        found.append(Block(str(page.relative_to(ROOT)), line, match.group("lang"), match.group("body"), needs))
    return found


def markers(page: Path) -> int:
    """How many runnable markers the page has (each must be followed by a block :func:`blocks` finds)."""
    return len(_MARKER.findall(page.read_text()))


def namespaces(block: Block) -> set[str]:
    """The namespaces the block's commands name (``-n X``, ``--namespace X``, ``create namespace X``)."""
    words = re.findall(r"(?:-n|--namespace)[ =]([a-z0-9-]+)|create namespace ([a-z0-9-]+)", block.script)
    return {a or b for a, b in words}
